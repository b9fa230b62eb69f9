"""`config migrate`: an older single-agent configuration into a providers file. Three shapes are read:

- env style: `CLAUDE_API_KEYS=k1,k2`, `CLAUDE_DAILY_LIMIT=1000`, `CLAUDE_CLI_PATH=/usr/local/bin/claude`, ...;
- a JSON or YAML `agents:` list (`[{name, type, api_key | api_keys, cli_path, daily_limit, ...}]`);
- the seed plan's `providers:` with `api_keys: [...]` and `rate_limit: 1000/hour` strings.

Key values never enter the providers file: each becomes an env var reference (`api_key_env`), and the values go to
an env file readable by the owner only, in the data dir. What could not be converted is said, never dropped
silently.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from configtools.schema import rate
from ledger import data_dir
from routing import InputError, load_document

KEYS_FILE = "keys.env"
_CLAUDE = {"claude", "claude_code", "claude-code", "claude_cli", "claude-cli", "claudecode"}
_TYPES = {
    **dict.fromkeys(_CLAUDE, "claude_cli"),
    "anthropic": "anthropic",
    "claude_api": "anthropic",
    "openai": "openai_compatible",
    "openai_compatible": "openai_compatible",
    "azure": "openai_compatible",
    "azure_openai": "openai_compatible",
    "ollama": "openai_compatible",
    "vllm": "openai_compatible",
    "openrouter": "openai_compatible",
    "lmstudio": "openai_compatible",
    "mock": "local_mock",
    "local_mock": "local_mock",
}
_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "ollama": "http://localhost:11434/v1",
    "vllm": "http://localhost:8000/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "lmstudio": "http://localhost:1234/v1",
}
_LIMIT_KEYS = {
    "daily_limit": "requests_per_day",
    "hourly_limit": "requests_per_hour",
    "minute_limit": "requests_per_minute",
    "requests_per_day": "requests_per_day",
    "requests_per_hour": "requests_per_hour",
    "requests_per_minute": "requests_per_minute",
    "tokens_per_day": "tokens_per_day",
    "daily_token_limit": "tokens_per_day",
}
_SAME = ("priority", "capabilities", "model", "base_url", "max_concurrency", "enabled", "api_key_env", "prices")
_RENAMED = {"cli_path": "executable", "executable": "executable", "timeout": "timeout_s", "timeout_s": "timeout_s"}
_REFERENCE = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class MigrationError(InputError):
    """OLD cannot be read, or is not one of the shapes `migrate` reads; the message says what it looked like."""


@dataclass
class Migration:
    source: Path
    shape: str  # env | agents | seed
    doc: dict[str, Any]
    keys: dict[str, str] = field(default_factory=dict)  # env var name -> key value (for the env file only)
    # key value -> (provider, subscription or None): so imported usage naming a key lands on its new name
    key_places: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was not converted, and why

    def render(self, out: Path, keys_file: Path) -> str:
        """The providers file's text: YAML with a header saying where it came from and where the keys are, or
        JSON for a `.json` target."""
        if out.suffix.lower() == ".json":
            return json.dumps(self.doc, indent=2) + "\n"
        header = [
            f"# Migrated by `switchboard config migrate` from {self.source} ({_SHAPES[self.shape]}).",
            "# Check it with `switchboard config validate`; undo it with `switchboard config rollback`.",
        ]
        if self.keys:
            header += [
                f"# Key values are not in this file: they are in {keys_file} (readable by you only).",
                f"# Load them before running: {load_line(keys_file)}",
            ]
        header += [f"# Not converted: {note}" for note in self.notes]
        body = yaml.safe_dump(self.doc, sort_keys=False, default_flow_style=None, width=120)
        return "\n".join(header) + "\n" + body


_SHAPES = {
    "env": "env style: CLAUDE_API_KEYS, CLAUDE_DAILY_LIMIT, CLAUDE_CLI_PATH",
    "agents": "an agents: list",
    "seed": "the seed plan's providers: with api_keys and rate_limit",
}


def load_line(keys_file: Path) -> str:
    """The one shell line that exports the keys in `keys_file`."""
    return f"set -a; . {shlex.quote(str(keys_file))}; set +a"


def keys_file_path() -> Path:
    return data_dir() / KEYS_FILE


def read_old(path: Path) -> Migration:
    """Read OLD in whichever of the three shapes it is."""
    try:
        text = path.expanduser().read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MigrationError(path, [f"cannot read it: {getattr(exc, 'strerror', None) or exc}"]) from None
    if _looks_like_env(path, text):
        return _from_env(path, text)
    doc = load_document(path.expanduser(), MigrationError)
    if isinstance(doc.get("agents"), list):
        migration = Migration(source=path, shape="agents", doc={})
        providers = {}
        for index, agent in enumerate(doc["agents"]):
            if not isinstance(agent, dict):
                migration.notes.append(f"agents[{index}]: not a mapping")
                continue
            name = _provider_name(str(agent.get("name") or agent.get("type") or f"agent_{index + 1}"), providers)
            providers.update(_convert(migration, name, agent, f"agents[{index}]"))
        migration.doc = _document(doc, providers, migration, skip={"agents"})
        return migration
    raw = doc.get("providers")
    if isinstance(raw, dict) and any(
        isinstance(p, dict) and ({"api_keys", "rate_limit", "api_key"} & set(p)) for p in raw.values()
    ):
        migration = Migration(source=path, shape="seed", doc={})
        providers = {}
        for name, settings in raw.items():
            if isinstance(settings, dict):
                providers.update(
                    _convert(migration, _provider_name(str(name), providers), settings, f"providers.{name}")
                )
        migration.doc = _document(doc, providers, migration, skip={"providers"})
        return migration
    if isinstance(raw, dict):
        raise MigrationError(
            path,
            [
                "already in the providers format (no api_keys or rate_limit to convert); check it with "
                "`switchboard config validate`, fix it with `switchboard config repair`"
            ],
        )
    raise MigrationError(
        path,
        [
            "not an older configuration: expected env lines (CLAUDE_API_KEYS=...), an `agents:` list, "
            "or `providers:` with api_keys / rate_limit"
        ],
    )


def _looks_like_env(path: Path, text: str) -> bool:
    if path.suffix.lower() in (".json", ".yaml", ".yml"):
        return False
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return bool(lines) and all(_ENV_LINE.match(line) for line in lines)


def _unquote(value: str) -> str:
    """A value as the shell reads it (`'it'"'"'s'` -> `it's`, `a # note` -> `a`)."""
    try:
        return " ".join(shlex.split(value, comments=True))
    except ValueError:  # an unbalanced quote: take it as written
        return value.strip()


def _from_env(path: Path, text: str) -> Migration:
    values = {}
    for line in text.splitlines():
        match = _ENV_LINE.match(line)
        if match and not line.lstrip().startswith("#"):
            values[match.group(1)] = _unquote(match.group(2))
    migration = Migration(source=path, shape="env", doc={})
    agent: dict[str, Any] = {"type": "claude_cli"}
    known = {
        "CLAUDE_API_KEYS": "api_keys",
        "CLAUDE_API_KEY": "api_keys",
        "ANTHROPIC_API_KEY": "api_keys",
        "CLAUDE_DAILY_LIMIT": "daily_limit",
        "CLAUDE_HOURLY_LIMIT": "hourly_limit",
        "CLAUDE_RATE_LIMIT": "rate_limit",
        "CLAUDE_CLI_PATH": "cli_path",
        "CLAUDE_CONFIG_DIRS": "config_dirs",
        "CLAUDE_CONFIG_DIR": "config_dirs",
        "CLAUDE_MODEL": "model",
        "CLAUDE_TIMEOUT": "timeout",
    }
    for name, value in values.items():
        key = known.get(name)
        if key is None:
            migration.notes.append(f"{name} (not a setting of the older single-agent configuration)")
        elif key in ("api_keys", "config_dirs"):
            agent.setdefault(key, []).extend(v.strip() for v in value.split(",") if v.strip())
        elif key in ("daily_limit", "hourly_limit", "timeout"):
            agent[key] = _number(value, name, migration)
        else:
            agent[key] = value
    agent = {k: v for k, v in agent.items() if v is not None}
    migration.doc = _document({}, _convert(migration, "claude", agent, "env"), migration, skip=set())
    return migration


def _number(value: str, name: str, migration: Migration) -> int | float | None:
    try:
        number = float(value)
    except ValueError:
        migration.notes.append(f"{name}={value!r} (not a number)")
        return None
    return int(number) if number == int(number) else number


def _provider_name(name: str, taken: dict[str, Any]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.:-]+", "_", name).strip("_") or "provider"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    return candidate


def _env_name(provider: str, index: int | None) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "_", provider).strip("_").upper() or "PROVIDER"
    return f"{stem}_API_KEY" + (f"_{index}" if index is not None else "")


def _convert(migration: Migration, name: str, agent: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """One older agent (or seed provider) as one or more providers (one per key, for types with one key each)."""
    kind = str(agent.get("type") or "claude_cli").lower()
    type_name = _TYPES.get(kind, kind)
    settings: dict[str, Any] = {"type": type_name}
    if type_name == "openai_compatible" and "base_url" not in agent and kind in _BASE_URLS:
        settings["base_url"] = _BASE_URLS[kind]
    limits: dict[str, Any] = {}
    keys: list[str] = []
    config_dirs: list[str] = []
    for key, value in agent.items():
        if key in ("name", "type"):
            continue
        if key in ("api_key", "api_keys", "keys"):
            keys += [str(v) for v in (value if isinstance(value, list) else [value]) if v]
        elif key in ("config_dir", "config_dirs"):
            config_dirs += [str(v) for v in (value if isinstance(value, list) else [value]) if v]
        elif key in _LIMIT_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
            limits[_LIMIT_KEYS[key]] = value
        elif key == "rate_limit" and isinstance(value, str) and rate(value):
            amount, unit = rate(value) or (0.0, "")
            limits[f"requests_per_{unit}"] = int(amount) if amount == int(amount) else amount
        elif key == "limits" and isinstance(value, dict):
            limits.update(value)
        elif key in _RENAMED and (type_name == "claude_cli" or _RENAMED[key] != "executable"):
            settings[_RENAMED[key]] = value
        elif key in _SAME:
            settings[key] = value
        else:
            migration.notes.append(f"{where}.{key} (no equivalent in the providers format)")
    if type_name == "claude_cli" and (len(keys) > 1 or config_dirs):
        subscriptions = [
            {"name": f"dir-{i}", "config_dir": d} | ({"limits": dict(limits)} if limits else {})
            for i, d in enumerate(config_dirs, start=1)
        ]
        for i, value in enumerate(keys, start=1):
            variable = _keep_key(migration, _env_name(name, i), value)
            migration.key_places[value] = (name, f"key-{i}")
            subscriptions.append(
                {"name": f"key-{i}", "api_key_env": variable} | ({"limits": dict(limits)} if limits else {})
            )
        return {name: {**settings, "subscriptions": subscriptions}}
    if len(keys) <= 1:
        if keys:
            settings["api_key_env"] = _keep_key(migration, _env_name(name, None), keys[0])
            migration.key_places[keys[0]] = (name, None)
        return {name: {**settings, **({"limits": limits} if limits else {})}}
    providers = {}
    for i, value in enumerate(keys, start=1):
        provider = f"{name}_{i}"
        providers[provider] = {**settings, "api_key_env": _keep_key(migration, _env_name(name, i), value)}
        if limits:
            providers[provider]["limits"] = dict(limits)
        migration.key_places[value] = (provider, None)
    return providers


def _keep_key(migration: Migration, variable: str, value: str) -> str:
    reference = _REFERENCE.match(value)
    if reference:  # `$NAME` or `${NAME}`: the old file already named a variable; keep naming it
        return reference.group(1)
    migration.keys[variable] = value
    return variable


def _document(old: dict[str, Any], providers: dict[str, Any], migration: Migration, skip: set[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": 1, "strategy": "priority_based"}
    for key in ("strategy", "budget", "switch_threshold", "reserve_for_critical", "circuit", "failover"):
        if key in old:
            doc[key] = old[key]
    for key in old:
        if key not in doc and key not in skip and key != "version":
            migration.notes.append(f"{key} (top-level; no equivalent in the providers format)")
    doc["providers"] = providers
    return doc


def write_keys(keys: dict[str, str], path: Path) -> None:
    """Merge `keys` into the owner-only env file at `path` (created 0600; its mode is set again if it existed)."""
    existing: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _ENV_LINE.match(line)
            if match and not line.lstrip().startswith("#"):
                existing[match.group(1)] = _unquote(match.group(2))
    merged = {**existing, **keys}
    lines = ["# Keys for Switchboard, written by `switchboard config migrate`. Readable by you only; never commit it."]
    lines += [f"{name}={shlex.quote(value)}" for name, value in merged.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)


__all__ = ["KEYS_FILE", "Migration", "MigrationError", "keys_file_path", "load_line", "read_old", "write_keys"]
