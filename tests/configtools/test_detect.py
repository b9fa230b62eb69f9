"""What `init` finds on a machine (a fake home, a `claude` that prints its version, Ollama and vLLM stand-ins on
127.0.0.1) and what it proposes and writes: sound, commented, and without any key's value."""

from __future__ import annotations

import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from configtools import CREDENTIALS_FILE, Proposal, detect, propose, render_providers_file, validate_file
from tests.fakes.fake_local_llm import serve_in_thread

SECRET = "sk-ant-api03-do-not-write-me-0123456789"


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path, str, str]]:
    home = tmp_path / "home"
    for name in (".claude", ".claude-team-b", ".claude-empty"):
        (home / name).mkdir(parents=True)
    (home / ".claude" / CREDENTIALS_FILE).write_text("{}")
    (home / ".claude-team-b" / CREDENTIALS_FILE).write_text("{}")
    (home / ".claude.json").write_text("{}")  # a file, not a config dir
    elsewhere = tmp_path / "work-login"
    elsewhere.mkdir()
    (elsewhere / CREDENTIALS_FILE).write_text("{}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    claude = bin_dir / "claude"
    claude.write_text("#!/bin/sh\necho '2.1.197 (Claude Code)'\n")
    claude.chmod(claude.stat().st_mode | stat.S_IXUSR)
    ollama, ollama_url = serve_in_thread("ollama")
    vllm, vllm_url = serve_in_thread("vllm", models=("Qwen/Qwen2.5-7B-Instruct",))
    env = {
        "PATH": str(bin_dir),
        "CLAUDE_CONFIG_DIR": str(elsewhere),
        "ANTHROPIC_API_KEY": SECRET,
        "OPENROUTER_API_KEY": "sk-or-v1-secret",
        "UNRELATED_TOKEN": "x",
    }
    yield env, home, ollama_url, vllm_url
    for server in (ollama, vllm):
        server.shutdown()
        server.server_close()


def _closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_detects_claude_logins_keys_by_name_and_local_servers(machine: tuple[dict[str, str], Path, str, str]) -> None:
    env, home, ollama_url, vllm_url = machine
    found = detect(env, home, ollama_url=ollama_url, vllm_url=vllm_url)
    assert found.claude_path == str(Path(env["PATH"]) / "claude") and found.claude_version == "2.1.197"
    assert [(login.name, login.config_dir) for login in found.logins] == [
        ("work-login", env["CLAUDE_CONFIG_DIR"]),
        ("default", "~/.claude"),
        ("team-b", "~/.claude-team-b"),
    ]
    assert found.key_variables == ["ANTHROPIC_API_KEY", "OPENROUTER_API_KEY"]
    assert [(s.kind, s.base_url, s.models) for s in found.local] == [
        ("ollama", f"{ollama_url}/v1", ("llama3.1:8b", "qwen2.5-coder:7b")),
        ("vllm", f"{vllm_url}/v1", ("Qwen/Qwen2.5-7B-Instruct",)),
    ]
    assert SECRET not in repr(found)


def test_nothing_found_proposes_the_mock(tmp_path: Path) -> None:
    found = detect({"PATH": str(tmp_path)}, tmp_path, ollama_url=_closed_url(), vllm_url=_closed_url())
    assert (found.claude_path, found.logins, found.key_variables, found.local) == (None, [], [], [])
    assert [p.name for p in propose(found, {})] == ["mock"]


def test_proposals_in_order_written_commented_and_valid(
    machine: tuple[dict[str, str], Path, str, str], tmp_path: Path
) -> None:
    env, home, ollama_url, vllm_url = machine
    found = detect(env, home, ollama_url=ollama_url, vllm_url=vllm_url)
    proposals = propose(found, env)
    assert [(p.name, p.settings["priority"]) for p in proposals] == [
        ("claude", 1),
        ("anthropic", 2),
        ("openrouter", 3),
        ("ollama", 4),
        ("vllm", 5),
    ]
    text = render_providers_file(proposals)
    assert SECRET not in text and "sk-or-v1-secret" not in text
    assert "  # Claude Code 2.1.197" in text and "api_key_env: ANTHROPIC_API_KEY" in text
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    result = validate_file(path, secrets=env.get, environment=False)
    assert result.problems == [] and result.config is not None
    assert result.config.providers["ollama"].prices["*"].output == 0.0
    assert [s.name for s in result.config.providers["claude"].subscriptions] == ["work-login", "default", "team-b"]


def test_the_written_file_offers_the_response_cache_commented_out_and_valid_once_uncommented(tmp_path: Path) -> None:
    mock = Proposal("mock", {"type": "local_mock", "priority": 1}, ["A stand-in."], "local_mock")
    text = render_providers_file([mock])
    (line,) = [x for x in text.splitlines() if x.startswith("# cache:")]
    path = tmp_path / "providers.yaml"
    path.write_text(text.replace(line, line.removeprefix("# ")))
    result = validate_file(path, environment=False)
    assert result.problems == [] and result.config is not None
    assert result.config.cache.enabled and result.config.cache.ttl_s == 86400
