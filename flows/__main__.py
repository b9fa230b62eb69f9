"""`python -m flows` is the `switchboard` command."""

from flows.cli import main

main()
