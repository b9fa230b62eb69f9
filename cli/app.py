"""What every `switchboard` command shares: the app they register on, the consoles, the exit codes and how an
error is printed. Command modules import this one; it imports none of them (cli/main.py wires them)."""

from __future__ import annotations

from cyclopts import App
from rich.console import Console
from rich.markup import escape

from cli.terminal import for_terminal

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130

app = App(name="switchboard", help="Run batches of AI tasks across many providers, with failover and a usage ledger.")
err_console = Console(stderr=True)
out_console = Console()


def print_error(message: str) -> None:
    """`error: <message>` on stderr, the message printed as written (file contents, names and paths in it are
    never read as console markup)."""
    err_console.print(f"[bold red]error:[/] {escape(for_terminal(message))}", highlight=False, soft_wrap=True)


def fail(code: int, message: str) -> int:
    """Print `error: <message>` on stderr (the message verbatim, never read as markup) and return `code`."""
    print_error(message)
    return code


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "app",
    "err_console",
    "fail",
    "out_console",
    "print_error",
]
