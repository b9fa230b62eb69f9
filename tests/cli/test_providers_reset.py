"""`switchboard providers reset`: recorded with who and why, refused for a name the providers file does not have."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ledger import RESET_EVENT, Ledger
from tests.cli.cli_kit import cli_env, one_error_line, switchboard


def test_a_reset_is_recorded_with_who_and_why(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        "providers:\n"
        "  claude:\n"
        "    type: claude_cli\n"
        "    subscriptions: [{name: team-a, config_dir: /tmp/a}, {name: team-b, config_dir: /tmp/b}]\n"
    )
    done = switchboard(
        "providers", "reset", "claude", "--subscription", "team-b", "--reason", "raised", "--providers",
        str(providers), "--json", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["provider"], doc["subscription"], doc["reason"]) == ("claude", "team-b", "raised")
    ledger = Ledger(url=env["SWITCHBOARD_DATABASE_URL"])
    [event] = ledger.events_since(datetime.now(UTC) - timedelta(minutes=5), [RESET_EVENT])
    assert (event.provider_id, event.subscription) == ("claude", "team-b")
    assert event.detail == {"by_hand": True, "by": doc["by"], "reason": "raised"} and "@" in doc["by"]
    ledger.close()

    unknown = switchboard(
        "providers", "reset", "claude", "--subscription", "team-c", "--providers", str(providers), env=env
    )
    assert unknown.returncode == 2
    assert one_error_line(unknown.stderr).endswith("provider 'claude' has no subscription 'team-c' (team-a, team-b)")
    missing = switchboard("providers", "reset", "nope", "--providers", str(providers), env=env)
    assert missing.returncode == 2 and "no provider 'nope' (configured: claude)" in missing.stderr
