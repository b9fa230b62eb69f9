"""Test harness around `fake_claude.py`: a `claude` on PATH, its scenario file and invocation log, and a fake clock."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FAKE_SCRIPT = Path(__file__).resolve().with_name("fake_claude.py")


@dataclass
class FakeClock:
    """A monotonic clock and a wall clock that move together, only when a test says so."""

    t: float = 1000.0
    wall_start: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 15, 0, tzinfo=UTC))

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.wall_start + timedelta(seconds=self.t - 1000.0)

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeCli:
    """Installs a `claude` wrapper in `bin_dir` that runs fake_claude.py with this interpreter."""

    def __init__(self, root: Path) -> None:
        self.bin_dir = root / "bin"
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.executable = self.bin_dir / "claude"
        self.executable.write_text(
            f"#!{sys.executable}\n"
            "import runpy, sys\n"
            f"sys.argv[0] = {str(FAKE_SCRIPT)!r}\n"
            f"runpy.run_path({str(FAKE_SCRIPT)!r}, run_name='__main__')\n"
        )
        self.executable.chmod(0o755)
        self.scenario_path = root / "scenario.json"
        self.log_path = root / "invocations.jsonl"
        self.scenario({})

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "FAKE_CLAUDE_SCENARIO": str(self.scenario_path),
            "FAKE_CLAUDE_LOG": str(self.log_path),
        }

    def scenario(self, scenario: dict[str, Any]) -> None:
        self.scenario_path.write_text(json.dumps(scenario))

    def records(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def calls(self) -> list[dict[str, Any]]:
        """One record per CLI run (not `--version`, which is not logged)."""
        return [r for r in self.records() if "argv" in r]

    def requests(self) -> dict[str, int]:
        """API requests each scenario key's runs made (an `api_retry` run makes one per retry, plus the first)."""
        key_of = {c["pid"]: c["key"] for c in self.calls()}
        counts: dict[str, int] = {}
        for r in self.records():
            if r.get("event") == "request":
                key = key_of.get(r["pid"], "?")
                counts[key] = counts.get(key, 0) + 1
        return counts

    def grandchildren(self) -> list[int]:
        return [r["pid"] for r in self.records() if r.get("event") == "grandchild"]

    def max_in_flight(self) -> int:
        """The most runs alive at once, from the start and `finished` times of runs that used `hold_s`."""
        ends = {r["pid"]: r["at"] for r in self.records() if r.get("event") == "finished"}
        edges = sorted(
            [(c["started"], 1) for c in self.calls() if c["pid"] in ends] + [(at, -1) for at in ends.values()]
        )  # at a tie the end sorts first: a run that ended as another began did not overlap it
        in_flight = peak = 0
        for _, step in edges:
            in_flight += step
            peak = max(peak, in_flight)
        return peak


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_dead(pid: int, timeout_s: float = 5.0) -> bool:
    """Poll until `pid` is gone (an orphaned grandchild is reaped by init shortly after it dies)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


# Credential values the tests hand the provider through its secret resolver; none may ever leak.
SECRETS: dict[str, str] = {
    "KEY_B": "sk-ant-api03-SECRET-VALUE-B-0123456789",
    "KEY_C": "sk-ant-api03-SECRET-VALUE-C-9876543210",
    # A gateway's key (used with ANTHROPIC_BASE_URL): not shaped like an Anthropic key, so only redacting the
    # known value can keep it out of error text.
    "KEY_GW": "gw-live-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
}
PARENT_KEY = "sk-ant-api03-PARENT-KEY-5555555555"


def install_fake(root: Path, monkeypatch: Any) -> FakeCli:
    """A fake `claude` first on PATH, and a parent environment holding credentials children must not inherit."""
    fake = FakeCli(root)
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ANTHROPIC_API_KEY", PARENT_KEY)
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "parent-auth-token-value")
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "parent-oauth-token-value")
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    return fake


def config_dirs(root: Path, *names: str) -> list[dict[str, Any]]:
    """Subscription configs with a fresh config dir each, named after the subscription."""
    subs = []
    for name in names:
        path = root / f"sub-{name}"
        path.mkdir(parents=True, exist_ok=True)
        subs.append({"name": name, "config_dir": str(path)})
    return subs
