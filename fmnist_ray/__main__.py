"""`python -m fmnist_ray` runs the command line, leaving as the installed command does."""

from .cli.leaving import console

console()
