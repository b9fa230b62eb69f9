"""`switchboard providers reset NAME [--subscription S]`: clear a provider's (or one subscription's) blocks, limit
windows and circuit by hand, for every routing process (routing.reset), recorded with who and why."""

from __future__ import annotations

import getpass
import json
import socket
import sys
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from cli.app import EXIT_INVALID, EXIT_OK, fail, out_console
from cli.providers import providers_app
from ledger import open_ledger
from routing import InputError, load_config, reset_everywhere


@providers_app.command(name="reset")
def reset(
    name: Annotated[str, Parameter(help="The provider, as the providers file names it.")],
    *,
    subscription: Annotated[str | None, Parameter(help="Only this subscription of the provider.")] = None,
    reason: Annotated[str | None, Parameter(help="Why, recorded with the reset.")] = None,
    providers: Annotated[
        Path | None, Parameter(help="Providers file (default: $SWITCHBOARD_PROVIDERS or built-in mocks).")
    ] = None,
    as_json: Annotated[bool, Parameter(name="--json", negative="", help="Print one JSON object on stdout.")] = False,
) -> int:
    """Clear a provider's quota blocks, limit windows and circuit (or one subscription's blocks and windows).

    Every routing process (runs, workers, the API) applies it within a second; a process started later does not
    bring back what came before. Recorded in provider_events with who and why. Exit 2 on an unknown provider or
    subscription, or an invalid providers file.
    """
    try:
        config = load_config(providers)
    except InputError as exc:
        return fail(EXIT_INVALID, str(exc))
    provider = config.providers.get(name)
    if provider is None:
        known = ", ".join(sorted(config.providers))
        return fail(EXIT_INVALID, f"{config.source}: no provider {name!r} (configured: {known})")
    subscriptions = tuple(s.name for s in getattr(provider, "subscriptions", None) or [])
    if subscription is not None and subscription not in subscriptions:
        listed = ", ".join(subscriptions) or "none"
        return fail(EXIT_INVALID, f"{config.source}: provider {name!r} has no subscription {subscription!r} ({listed})")
    by = f"{getpass.getuser()}@{socket.gethostname()}"
    reset_everywhere(open_ledger(), by, name, subscriptions, subscription, by=by, reason=reason)
    what = f"{name}/{subscription}" if subscription else name
    if as_json:
        doc = {"provider": name, "subscription": subscription, "by": by, "reason": reason}
        sys.stdout.write(json.dumps(doc) + "\n")
    else:
        cleared = "blocks and limit windows" if subscription else "blocks, limit windows and circuit"
        out_console.print(
            f"reset {what}: {cleared} cleared for every routing process (recorded as {by}"
            + (f": {reason})" if reason else ")"),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    return EXIT_OK
