"""One invocation's plan: its unique runs, what is already done, each run's cost, the
longest-first order, and how many runs share a GPU."""
