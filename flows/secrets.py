"""Secrets for providers: an environment variable first, then a Prefect Secret block of the same name.

Providers name their keys (`api_key_env: ANTHROPIC_API_KEY`) and ask a `SecretResolver` for the value
(DESIGN.md: env vars by default; `flows/` adds Prefect Secret blocks). Block names are lowercase with dashes,
so `ANTHROPIC_API_KEY` is looked up as the block `anthropic-api-key`.

Blocks are tried only where a Prefect API is known to answer: `PREFECT_API_URL` is set (environment, profile
or a test harness), or the resolver was made inside a flow or task run (ephemeral mode, whose temporary server
is then running). Anywhere else a lookup would start a temporary server or wait on an unreachable one, so it is
skipped. Each lookup runs in a daemon thread with a deadline; after a timeout blocks are not tried again.
Values are cached for the resolver's life (providers ask on every request) and never logged.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from providers import SecretResolver, secret_block_name

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 5.0
T = TypeVar("T")
_BLOCK_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def block_name(name: str) -> str:
    """The Secret block name for an env var name: `ANTHROPIC_API_KEY` -> `anthropic-api-key`."""
    return secret_block_name(name)


def secret_resolver(*, timeout_s: float = DEFAULT_TIMEOUT_S, use_blocks: bool | None = None) -> SecretResolver:
    """A resolver reading the env var `name`, else the Prefect Secret block `block_name(name)`, else None.

    Make it where it will be used: inside the flow run when the run has no `PREFECT_API_URL` (ephemeral mode).
    `use_blocks` forces block lookups on or off instead of deciding from the environment.
    """
    return PrefectSecretResolver(timeout_s=timeout_s, use_blocks=use_blocks)


class PrefectSecretResolver:
    """See the module docstring; a callable `(name) -> str | None`, safe to call from any thread or event loop."""

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S, use_blocks: bool | None = None) -> None:
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._cache: dict[str, str | None] = {}
        # Lookups run in other threads (callers include the engine loop's thread); they need the Prefect
        # settings of the place the resolver was made, e.g. a test harness's temporary API URL.
        self._settings = _settings_context()
        self._forced = use_blocks
        self._in_run = use_blocks is None and _in_prefect_run()
        self._api_url: bool | None = None
        self._gave_up = False

    def __call__(self, name: str) -> str | None:
        value = os.environ.get(name)
        if value:
            return value
        with self._lock:
            if name in self._cache:
                return self._cache[name]
            if not self._blocks_usable():
                return None
            value = self._load_block(name)
            self._cache[name] = value
            return value

    def uses_blocks(self) -> bool:
        """Whether a name missing from the environment is looked up as a Secret block (else only env vars)."""
        with self._lock:
            return self._blocks_usable()

    def _blocks_usable(self) -> bool:
        if self._gave_up:
            return False
        if self._forced is not None:
            return self._forced
        if self._in_run:
            return True
        if self._api_url is None:
            # Decided on the first miss: an API URL may live in a Prefect profile, which needs prefect imported.
            self._api_url = _api_url_configured(self._settings)
        return self._api_url

    def _load_block(self, name: str) -> str | None:
        block = block_name(name)
        if not _BLOCK_NAME.fullmatch(block):
            return None
        outcome: list[str | None] = []
        failure: list[str] = []

        def load() -> None:
            try:
                outcome.append(_read_secret_block(block))
            except Exception as exc:  # a missing block is a ValueError; an API failure anything from httpx
                failure.append(type(exc).__name__)

        worker = threading.Thread(
            target=_with_settings, args=(self._settings, load), name=f"secret-block-{block}", daemon=True
        )
        worker.start()
        worker.join(self._timeout_s)
        if worker.is_alive():
            log.warning(
                "looking up Prefect Secret block %r took over %gs; not using Secret blocks any more",
                block,
                self._timeout_s,
            )
            self._gave_up = True
            return None
        if failure:
            # ValueError is "no such block", the common case for a key that is simply not configured.
            level = logging.DEBUG if failure[0] == "ValueError" else logging.WARNING
            log.log(level, "no value from Prefect Secret block %r (%s)", block, failure[0])
            return None
        return outcome[0] if outcome else None


def _read_secret_block(block: str) -> str | None:
    from prefect.blocks.system import Secret

    # _sync: inside an async flow's context Prefect would otherwise hand back a coroutine.
    secret = Secret.load(block, _sync=True)  # type: ignore[call-arg]
    value = secret.get()
    if isinstance(value, str) and value:
        return value
    log.warning("Prefect Secret block %r does not hold a non-empty string; ignored", block)
    return None


def _in_prefect_run() -> bool:
    """Whether this code runs inside a Prefect flow or task run (only possible if prefect is imported)."""
    if "prefect.context" not in sys.modules:
        return False
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def _settings_context() -> Any:
    """This thread's Prefect settings context, or None when prefect is not imported (nothing can override it)."""
    if "prefect.context" not in sys.modules:
        return None
    from prefect.context import SettingsContext

    return SettingsContext.get()


def _with_settings(settings: Any, fn: Callable[[], T]) -> T:
    """Run `fn` under a copy of a captured settings context (one context object cannot be entered twice)."""
    if settings is None:
        return fn()
    with settings.model_copy():
        return fn()


def _api_url_configured(settings: Any) -> bool:
    if os.environ.get("PREFECT_API_URL"):
        return True

    def configured() -> bool:
        from prefect.settings import get_current_settings

        return bool(get_current_settings().api.url)

    try:
        return _with_settings(settings, configured)
    except Exception as exc:  # a broken profile file must not break key lookup
        log.debug("cannot read Prefect settings (%s); not using Secret blocks", type(exc).__name__)
        return False


__all__ = ["PrefectSecretResolver", "block_name", "secret_resolver"]
