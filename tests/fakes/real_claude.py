"""The real Claude Code CLI for end-to-end tests: a pinned `@anthropic-ai/claude-code` installed with npm.

It goes into a cache folder outside the repository (`$SWITCHBOARD_TEST_CACHE`, else ~/.cache/switchboard-tests)
once per machine, under a lock so concurrent test runs share one install. A test that needs it is skipped,
naming the reason, only when npm is missing or cannot install it. The CLI runs offline against a local
Messages API stand-in (tests/fakes/fake_messages_api.py) with the environment `offline_env` gives it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# The version whose wire formats the fakes and PROVIDERS.md 1.3a were checked against.
CLAUDE_CODE_VERSION = "2.1.197"
_PACKAGE = "@anthropic-ai/claude-code"
_INSTALL_TIMEOUT_S = 600


def cache_root() -> Path:
    return Path(os.environ.get("SWITCHBOARD_TEST_CACHE") or Path.home() / ".cache" / "switchboard-tests")


def install(version: str = CLAUDE_CODE_VERSION) -> tuple[Path | None, str]:
    """(the `claude` executable, "") once installed, else (None, why not)."""
    npm = shutil.which("npm")
    if npm is None:
        return None, "npm is not installed, so the real Claude Code CLI cannot be installed"
    root = cache_root()
    target = root / f"claude-code-{version}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".claude-code-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be installing the same version
        found = _working_binary(target, version)
        if found is not None:
            return found, ""
        staging = Path(tempfile.mkdtemp(prefix=f"claude-code-{version}-", dir=root))
        try:
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(staging), f"{_PACKAGE}@{version}"],
                capture_output=True,
                text=True,
                timeout=_INSTALL_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            return None, f"npm could not install {_PACKAGE}@{version}: {exc}"
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return None, f"npm could not install {_PACKAGE}@{version} (exit {done.returncode}): {last}"
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        found = _working_binary(target, version)
        if found is None:
            return None, f"{_PACKAGE}@{version} installed into {target} but its `claude --version` does not answer"
        return found, ""


def _working_binary(prefix: Path, version: str) -> Path | None:
    """The installed CLI, if it answers `--version` with `version`. The wrapper's postinstall copies the native
    binary over a placeholder; where npm skipped install scripts, the native package's binary is used as is."""
    native = sorted((prefix / "node_modules" / "@anthropic-ai").glob("claude-code-*/claude"))
    for candidate in [prefix / "node_modules" / ".bin" / "claude", *native]:
        if not candidate.is_file():
            continue
        try:
            out = subprocess.run([str(candidate), "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.startswith(version):
            return candidate
    return None


def offline_env(base_url: str, home: Path) -> dict[str, str]:
    """What the CLI needs to talk only to the stand-in at `base_url`: no updater, telemetry or other traffic,
    and a HOME of its own (it writes settings and session files there)."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "ANTHROPIC_BASE_URL": base_url,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "HOME": str(home),
    }


def write_login(config_dir: Path, access_token: str) -> None:
    """A subscription login as `/login` leaves it on Linux: `.credentials.json` in the config dir."""
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / ".credentials.json"
    login = {
        "claudeAiOauth": {
            "accessToken": access_token,
            "refreshToken": "sk-ant-ort01-not-used",
            "expiresAt": 4102444800000,
            "scopes": ["user:inference", "user:profile"],
            "subscriptionType": "max",
        }
    }
    path.write_text(json.dumps(login))
    path.chmod(0o600)
