"""The runner, the only part that uses Ray (pyproject's import contracts): connect or start a
cluster, share the data once, long-lived trainers fed by a dispatcher, retries, signals, live
progress, and Ray Jobs."""
