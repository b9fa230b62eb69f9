"""`switchboard`: the app with every command group registered on it, run with the exit code it asks for."""

from __future__ import annotations

import sys

from cyclopts import CycloptsError

# Each command module registers its commands on `app` when imported.
from cli import (  # noqa: F401
    cancel,
    config,
    db,
    init,
    providers,
    providers_reset,
    report,
    run,
    serve,
    server,
    simulate,
    watch,
)
from cli.app import EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, app, print_error
from ledger import LedgerUnavailable


def main(argv: list[str] | None = None) -> None:
    try:
        code = app(argv if argv is not None else sys.argv[1:], exit_on_error=False, print_error=True)
    except CycloptsError:
        code = EXIT_INVALID
    except LedgerUnavailable as exc:  # any command that opens the ledger; nothing was run or written
        print_error(str(exc))
        code = EXIT_INVALID
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else EXIT_OK)


__all__ = ["main"]
