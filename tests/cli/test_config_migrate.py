"""`switchboard config migrate` (with a usage CSV) and `rollback`, as a user runs them."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.cli.cli_kit import cli_env, switchboard

KEYS = ("sk-ant-aaaaaaaaaaaa1111", "sk-ant-bbbbbbbbbbbb2222")


def test_migrate_env_style_with_usage_then_roll_back(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    home = Path(env["SWITCHBOARD_HOME"])
    old = tmp_path / "agent.env"
    old.write_text(f"CLAUDE_API_KEYS={KEYS[0]},{KEYS[1]}\nCLAUDE_DAILY_LIMIT=1000\nCLAUDE_CLI_PATH=/bin/true\n")
    usage = tmp_path / "usage.csv"
    usage.write_text(
        "timestamp,key,task_type,tokens_in,tokens_out,cost_usd\n"
        f"2026-11-01T10:00:00Z,{KEYS[0]},code_review,100,20,0.01\n"
        "oops,x,code_review,1,1,0\n"
        f"2026-11-01T11:00:00Z,{KEYS[1]},bug_fix,50,10,0.005\n"
    )
    result = switchboard("config", "migrate", str(old), "--usage", str(usage), env=env)
    assert result.returncode == 1, result.stderr  # one bad usage row; the rest imported
    keys_file = home / "keys.env"
    assert result.stdout == f"set -a; . {keys_file}; set +a\n"  # the one line that loads the keys
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600 and KEYS[0] in keys_file.read_text()
    providers = tmp_path / "providers.yaml"
    text = providers.read_text()
    assert KEYS[0] not in text and KEYS[1] not in text and "api_key_env: CLAUDE_API_KEY_2" in text
    assert f"{usage}:3: timestamp: 'oops' is not an ISO 8601 time" in result.stderr
    assert "usage: 2 row(s) imported" in result.stderr
    report = switchboard("report", "--since", "400d", "--format", "json", env=env)
    assert report.returncode == 0 and '"subscription": "key-2"' in report.stdout.replace("'", '"')
    checked = switchboard(
        "config", "validate", str(providers), env={**env, "CLAUDE_API_KEY_1": "a", "CLAUDE_API_KEY_2": "b"}
    )
    assert checked.returncode == 0, checked.stdout
    again = switchboard("config", "migrate", str(old), "--usage", str(usage), env=env)
    assert "usage: 0 row(s) imported from" in again.stderr and "2 already in the ledger" in again.stderr
    assert switchboard("config", "rollback", env=env).returncode == 0  # the second migration
    assert switchboard("config", "rollback", env=env).returncode == 0  # the first
    assert not providers.exists() and not keys_file.exists()


def test_a_file_already_in_the_providers_format_is_not_migrated(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("providers:\n  m: {type: local_mock}\n")
    result = switchboard("config", "migrate", str(path), env=cli_env(tmp_path))
    assert result.returncode == 2 and "already in the providers format" in result.stderr
    assert not (tmp_path / "providers.yaml").exists()
