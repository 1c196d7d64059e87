"""`python -m fmnist_ray` runs the command line."""

from .cli.commands import main

main()
