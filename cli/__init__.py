"""The `switchboard` command (DESIGN.md "CLI contract"): cli/app.py holds the app, consoles, exit codes and error
printing; one module per command group (run.py: run, runs, show; providers.py; report.py; server.py;
simulate.py) registers on it; main.py wires them. Nothing else imports the CLI."""

from cli.main import main

__all__ = ["main"]
