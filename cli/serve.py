"""`switchboard serve`: the HTTP API and the provider board on uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from cli.app import EXIT_FAILED, EXIT_INVALID, EXIT_OK, app, fail, out_console

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


@app.command(name="serve")
def serve(
    *,
    host: Annotated[str, Parameter(help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, Parameter(help="Port to listen on.")] = DEFAULT_PORT,
    providers: Annotated[
        Path | None, Parameter(help="Providers file (default: $SWITCHBOARD_PROVIDERS or built-in mocks).")
    ] = None,
) -> int:
    """Serve the HTTP API (under /api/v1) and the provider board (at /) until Ctrl-C.

    Needs at least one token: SWITCHBOARD_API_TOKEN (one admin token) or `api.tokens` in the providers file.
    Exit 2 on an invalid providers file, a token whose variable is unset, no token at all, or a ledger that
    cannot be opened; exit 1 when the port cannot be bound.
    """
    import uvicorn

    # FastAPI, uvicorn and the API's modules (with Prefect's secret resolver) load only for this command.
    from api import TOKEN_ENV, TokenProblem, TokenSet, create_app
    from flows import secret_resolver
    from ledger import open_ledger
    from routing import InputError, load_config

    if not 0 < port < 65536:
        return fail(EXIT_INVALID, f"--port {port}: not a TCP port (1-65535)")
    try:
        config = load_config(providers)
    except InputError as exc:
        return fail(EXIT_INVALID, str(exc))
    secrets = secret_resolver()
    try:
        tokens = TokenSet.from_settings(config.api.tokens, secrets)
    except TokenProblem as exc:
        return fail(EXIT_INVALID, f"{config.source}: {exc}")
    if not len(tokens):
        return fail(
            EXIT_INVALID, f"no API token: export {TOKEN_ENV} (an admin token) or list api.tokens in the providers file"
        )
    application = create_app(config, open_ledger(), tokens, secrets=secrets)
    base = f"http://{host}:{port}"
    out_console.print(f"Switchboard API on {base}/api/v1 · board at {base}/", highlight=False)
    server = uvicorn.Server(uvicorn.Config(application, host=host, port=port, log_level="warning", lifespan="on"))
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits 1 when it cannot bind
        return EXIT_FAILED if exc.code else EXIT_OK
    return EXIT_OK if server.started else EXIT_FAILED


__all__ = ["serve"]
