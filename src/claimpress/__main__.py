"""`python -m claimpress` runs the command line."""

from .cli import main

main()
