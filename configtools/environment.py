"""Problems of the place a providers file runs in, not of the file: a key's env var (or Prefect Secret block)
missing, a Claude config dir without a login, the `claude` executable not found, and, when asked, a
`base_url` that does not answer. Values of keys are only tested for presence, never shown."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from pydantic import BaseModel

from configtools.problems import Path_, Problem, ProblemKind, field_name
from configtools.source import Source
from providers import ClaudeCliConfig, ProviderConfig, SecretResolver, secret_block_name
from routing import SwitchboardConfig

# Where Claude Code keeps a subscription login on Linux and Windows (macOS keeps it in the keychain).
CREDENTIALS_FILE = ".credentials.json"
CLAUDE_CONFIG_ENV = "CLAUDE_CONFIG_DIR"
PROBE_TIMEOUT_S = 3.0
_Add = Callable[[Path_, ProblemKind, str, str], None]


def has_login(config_dir: Path) -> bool:
    return (config_dir / CREDENTIALS_FILE).is_file()


def default_config_dir() -> Path:
    """The login a `claude_cli` provider without subscriptions uses: $CLAUDE_CONFIG_DIR, else ~/.claude."""
    return Path(os.environ.get(CLAUDE_CONFIG_ENV) or "~/.claude").expanduser()


def environment_problems(
    source: Source,
    config: SwitchboardConfig,
    secrets: SecretResolver,
    *,
    blocks_checked: bool,
    probe: bool = False,
    api_tokens: bool = True,
) -> list[Problem]:
    """The environment's problems for every enabled provider (`probe` also calls each `base_url` once) and, with
    `api_tokens`, for the HTTP API's tokens (`switchboard serve` refuses to start without them)."""
    problems: list[Problem] = []

    def add(path: Path_, kind: ProblemKind, message: str, hint: str) -> None:
        problems.append(
            Problem(
                file=str(source.path),
                line=source.line(path),
                field=field_name(path),
                kind=kind,
                message=message,
                hint=hint,
            )
        )

    enabled = {name: p for name, p in config.providers.items() if p.enabled}
    for name, provider in enabled.items():
        base: Path_ = ("providers", name)
        for path, variable in _key_variables(provider, base):
            if secrets(variable):
                continue
            where = f"the env var {variable}" + (
                f" nor a Prefect Secret block {secret_block_name(variable)!r}" if blocks_checked else ""
            )
            add(
                path,
                "missing_secret",
                f"neither {where} holds a key" if blocks_checked else f"{where} is not set",
                f"export {variable}=... (or create the Prefect Secret block {secret_block_name(variable)!r}), "
                "or set `enabled: false` on this provider",
            )
        if isinstance(provider, ClaudeCliConfig):
            _claude_problems(provider, base, add)
    for index, token in enumerate(config.api.tokens if api_tokens else ()):
        if not secrets(token.token_env):
            add(
                ("api", "tokens", index, "token_env"),
                "missing_secret",
                f"the env var {token.token_env} is not set: `switchboard serve` cannot accept the token {token.name!r}",
                f"export {token.token_env}=... before `switchboard serve`, or remove the token",
            )
    if probe:
        problems += _unreachable(source, enabled)
    return problems


def _key_variables(model: BaseModel, path: Path_) -> Iterator[tuple[Path_, str]]:
    """Every `api_key_env` set in a provider's config, nested models (subscriptions) included."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if name == "api_key_env" and isinstance(value, str) and value:
            yield (*path, name), value
        elif isinstance(value, BaseModel):
            yield from _key_variables(value, (*path, name))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from _key_variables(item, (*path, name, index))


def _claude_problems(provider: ClaudeCliConfig, base: Path_, add: _Add) -> None:
    if shutil.which(os.path.expanduser(provider.executable)) is None:
        add(
            (*base, "executable"),
            "missing_executable",
            f"the Claude Code CLI {provider.executable!r} is not found",
            "install it (npm install -g @anthropic-ai/claude-code) or set `executable:` to its path",
        )
    if sys.platform == "darwin":  # the login is in the keychain there: nothing on disk to look at
        return
    dirs: list[tuple[Path_, str]] = [
        ((*base, "subscriptions", i, "config_dir"), s.config_dir)
        for i, s in enumerate(provider.subscriptions)
        if s.config_dir is not None
    ]
    if not provider.subscriptions and provider.api_key_env is None:
        dirs.append((base, str(default_config_dir())))
    for path, folder in dirs:
        where = Path(folder).expanduser()
        if not where.is_dir():
            add(path, "no_login", f"the config dir {folder} does not exist", _login_hint(folder))
        elif not has_login(where):
            add(path, "no_login", f"the config dir {folder} holds no Claude Code login", _login_hint(folder))


def _login_hint(folder: str) -> str:
    return f"log it in once: CLAUDE_CONFIG_DIR={folder} claude, then /login"


def _unreachable(source: Source, providers: dict[str, ProviderConfig]) -> list[Problem]:
    targets = [(name, p.base_url) for name, p in providers.items() if p.base_url]
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        answers = list(pool.map(lambda target: _probe(target[1]), targets))
    problems = []
    for (name, url), reason in zip(targets, answers, strict=True):
        if reason is None:
            continue
        path: Path_ = ("providers", name, "base_url")
        problems.append(
            Problem(
                file=str(source.path),
                line=source.line(path) or source.line(("providers", name)),
                field=field_name(path),
                kind="unreachable",
                message=f"{url} does not answer ({reason})",
                hint="start the server (e.g. `ollama serve`), or correct the URL",
            )
        )
    return problems


def _probe(url: str) -> str | None:
    """None when anything answers at `url` (any HTTP status will do: a 401 or 404 is a server there), else why."""
    try:
        with httpx.Client(timeout=PROBE_TIMEOUT_S, follow_redirects=False) as client:
            client.get(url)
    except httpx.TimeoutException:
        return f"no answer within {PROBE_TIMEOUT_S:g} s"
    except httpx.HTTPError as exc:
        return type(exc).__name__ + (f": {exc}" if str(exc) else "")
    return None


__all__ = ["CREDENTIALS_FILE", "default_config_dir", "environment_problems", "has_login"]
