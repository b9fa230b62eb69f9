"""What a machine already has for `switchboard init`: the `claude` executable and its version, Claude config dirs
holding a login, API keys in env vars (their names only: values are never read into the answer), and a local
Ollama or vLLM answering on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from configtools.environment import CLAUDE_CONFIG_ENV, has_login

# The key variables `init` looks for, and the provider each one means.
KEY_VARIABLES: dict[str, str] = {
    "ANTHROPIC_API_KEY": "anthropic",
    "OPENAI_API_KEY": "openai",
    "OPENROUTER_API_KEY": "openrouter",
    "AZURE_OPENAI_API_KEY": "azure",
}
OLLAMA_URL = "http://127.0.0.1:11434"
VLLM_URL = "http://127.0.0.1:8000"
_LOCAL_TIMEOUT_S = 1.0
_VERSION = re.compile(r"\d+\.\d+\.\d+")


@dataclass(frozen=True)
class ClaudeLogin:
    name: str  # a subscription name from the folder: ~/.claude -> default, ~/.claude-team-a -> team-a
    config_dir: str  # as a user writes it (~ kept)


@dataclass(frozen=True)
class LocalServer:
    kind: str  # ollama | vllm
    base_url: str  # the OpenAI-compatible root, e.g. http://127.0.0.1:11434/v1
    models: tuple[str, ...]


@dataclass
class Detected:
    claude_path: str | None = None
    claude_version: str | None = None
    logins: list[ClaudeLogin] = field(default_factory=list)
    key_variables: list[str] = field(default_factory=list)  # names only
    local: list[LocalServer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def detect(
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    *,
    ollama_url: str = OLLAMA_URL,
    vllm_url: str = VLLM_URL,
) -> Detected:
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    found = Detected()
    found.claude_path = shutil.which("claude", path=env.get("PATH"))
    if found.claude_path:
        found.claude_version = _claude_version(found.claude_path, found)
    found.logins = _logins(env, home)
    found.key_variables = [name for name in KEY_VARIABLES if env.get(name)]
    for kind, url in (("ollama", ollama_url), ("vllm", vllm_url)):
        server = _local_server(kind, url)
        if server is not None:
            found.local.append(server)
    return found


def _claude_version(path: str, found: Detected) -> str | None:
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        found.notes.append(f"`{path} --version` did not answer ({type(exc).__name__})")
        return None
    match = _VERSION.search(done.stdout)
    if done.returncode != 0 or match is None:
        found.notes.append(f"`{path} --version` exited {done.returncode} without a version")
        return None
    return match.group()


def _shown(path: Path, home: Path) -> str:
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


def _logins(env: Mapping[str, str], home: Path) -> list[ClaudeLogin]:
    folders: list[Path] = []
    named = env.get(CLAUDE_CONFIG_ENV)
    if named:
        folders.append(Path(named).expanduser())
    folders += sorted(p for p in home.glob(".claude*") if p.is_dir())
    logins: list[ClaudeLogin] = []
    seen: set[Path] = set()
    for folder in folders:
        resolved = folder.resolve()
        if resolved in seen or not has_login(folder):
            continue
        seen.add(resolved)
        stem = folder.name.removeprefix(".claude").lstrip("-_.") or "default"
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem)
        while name in {login.name for login in logins}:
            name += "-2"
        logins.append(ClaudeLogin(name=name, config_dir=_shown(folder, home)))
    return logins


def _local_server(kind: str, url: str) -> LocalServer | None:
    root = url.rstrip("/")
    try:
        with httpx.Client(timeout=_LOCAL_TIMEOUT_S) as client:
            if kind == "ollama":
                answer = client.get(f"{root}/api/tags")
                models = [m.get("name") for m in answer.json().get("models", [])] if answer.is_success else None
            else:
                answer = client.get(f"{root}/v1/models")
                models = [m.get("id") for m in answer.json().get("data", [])] if answer.is_success else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    if models is None:
        return None
    return LocalServer(kind=kind, base_url=f"{root}/v1", models=tuple(m for m in models if isinstance(m, str)))


__all__ = ["KEY_VARIABLES", "OLLAMA_URL", "VLLM_URL", "ClaudeLogin", "Detected", "LocalServer", "detect"]
