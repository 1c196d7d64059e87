"""The command line: thin Typer commands over the Python API (`commands`), their options generated
from the declarations (`options`)."""
