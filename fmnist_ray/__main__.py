"""`python -m fmnist_ray` runs the command line."""

from .cli import main

main()
