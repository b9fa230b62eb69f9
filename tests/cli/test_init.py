"""`switchboard init` as a user runs it: through its prompts on a terminal (a pty), and by flags with --yes."""

from __future__ import annotations

import os
import pty
import select
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from configtools import CREDENTIALS_FILE
from tests.cli.cli_kit import ROOT, cli_env, switchboard
from tests.fakes.fake_local_llm import serve_in_thread

SECRET = "sk-ant-api03-never-in-the-file-0123456789"


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A home with one Claude login, a `claude` printing its version, an Ollama stand-in, ANTHROPIC_API_KEY."""
    home = tmp_path / "home"
    (home / ".claude-team-a").mkdir(parents=True)
    (home / ".claude-team-a" / CREDENTIALS_FILE).write_text("{}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    claude = bin_dir / "claude"
    claude.write_text("#!/bin/sh\necho '2.1.197 (Claude Code)'\n")
    claude.chmod(claude.stat().st_mode | stat.S_IXUSR)
    server, url = serve_in_thread("ollama")
    env = cli_env(
        tmp_path,
        HOME=str(home),
        PATH=f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
        ANTHROPIC_API_KEY=SECRET,
        SB_TEST_OLLAMA=url,
    )
    env.pop("CLAUDE_CONFIG_DIR", None)
    for name in ("OPENAI_API_KEY", "OPENROUTER_API_KEY", "AZURE_OPENAI_API_KEY"):
        env.pop(name, None)
    yield env
    server.shutdown()
    server.server_close()


def _closed_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _on_a_terminal(
    args: list[str], env: dict[str, str], answers: list[tuple[str, str]], timeout: float = 60
) -> tuple[int, str]:
    """Run `switchboard ARGS` on a pty; each time its output ends with a prompt's text, type the answer."""
    main, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", *args], stdin=secondary, stdout=secondary, stderr=secondary, env=env, cwd=ROOT
    )
    os.close(secondary)
    seen = b""
    searched_from = 0  # output before this was already matched against a prompt
    pending = list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        if pending and pending[0][0].encode() in seen[searched_from:] and seen.rstrip().endswith(b":"):
            _, answer = pending.pop(0)
            searched_from = len(seen)
            os.write(main, answer.encode() + b"\r")
        if process.poll() is not None and not ready:
            break
    process.wait(timeout=10)
    os.close(main)
    return process.returncode, seen.decode(errors="replace").replace("\r\n", "\n")


def test_init_through_its_prompts_on_a_terminal(machine: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "providers.yaml"
    args = ["init", "--out", str(out), "--ollama-url", machine["SB_TEST_OLLAMA"], "--vllm-url", _closed_url()]
    code, screen = _on_a_terminal(
        args,
        machine,
        [
            ("Add claude", "y"),
            ("Add anthropic", "n"),
            ("Add ollama", "y"),
            ("Model for ollama", "2"),
            ("Probe each provider now", "y"),
        ],
    )
    assert code == 0, screen
    assert "claude CLI:      2.1.197" in screen and "API keys in env: ANTHROPIC_API_KEY (names only)" in screen
    assert "probe claude: healthy" in screen and "probe ollama: healthy" in screen
    assert "Validated: ok" in screen and f"export SWITCHBOARD_PROVIDERS={out}" in screen
    text = out.read_text()
    assert "anthropic" not in text.split("providers:")[1] and "model: qwen2.5-coder:7b" in text
    assert "{name: team-a, config_dir: ~/.claude-team-a}" in text


def test_init_by_flags_for_scripts(machine: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "providers.yaml"
    base = ["init", "--yes", "--out", str(out), "--ollama-url", machine["SB_TEST_OLLAMA"], "--vllm-url", _closed_url()]
    result = switchboard(*base, "--only", "anthropic", "--only", "ollama", "--no-probe", env=machine)
    assert result.returncode == 0, result.stdout + result.stderr
    text = out.read_text()
    assert SECRET not in text and SECRET not in result.stdout + result.stderr
    assert "api_key_env: ANTHROPIC_API_KEY" in text and "claude_cli" not in text
    assert switchboard("config", "validate", str(out), env=machine).returncode == 0
    # The vendor batch API is offered where the vendor has one (the Anthropic API, not a local Ollama), and the
    # line, uncommented, is a valid file.
    assert text.count("# batch: {enabled: true}") == 1
    uncommented = tmp_path / "with-batch.yaml"
    uncommented.write_text(text.replace("# batch: {enabled: true}", "batch: {enabled: true}"))
    assert switchboard("config", "validate", str(uncommented), env=machine).returncode == 0
    before = out.read_bytes()
    again = switchboard(*base, "--strategy", "cost_based", env=machine)  # --yes replaces, kept for rollback
    assert again.returncode == 0 and "strategy: cost_based" in out.read_text()
    assert switchboard("config", "rollback", env=machine).returncode == 0
    assert out.read_bytes() == before
    unknown = switchboard(*base, "--only", "gemini", env=machine)
    assert unknown.returncode == 2 and "nothing proposed named gemini" in unknown.stderr


def test_answers_running_out_write_nothing(machine: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "providers.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "cli", "init", "--out", str(out), "--vllm-url", _closed_url(),
         "--ollama-url", _closed_url()],
        input="y\n", capture_output=True, text=True, env=machine, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and "the input ended before the setup was complete" in result.stderr
    assert not out.exists()
