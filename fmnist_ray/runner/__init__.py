"""The runner, the only code that uses Ray: connect or start a cluster, share the data once,
long-lived trainers fed by a dispatcher, retries, signals, live progress, and Ray Jobs."""
