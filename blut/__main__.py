"""`python -m blut` is the `blut` command."""

from blut.cli import main

main()
