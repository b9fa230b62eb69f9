"""`python -m cli` is the `switchboard` command."""

from cli import main

main()
