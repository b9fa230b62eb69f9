"""`config migrate` of the three older shapes: what the providers file says, where the keys go (never into it),
and the round trip migrate -> rollback byte for byte."""

from __future__ import annotations

import stat
from pathlib import Path

import yaml

from configtools import keys_file_path, load_line, read_old, record_change, rollback, validate_file, write_keys

KEYS = ("sk-ant-aaaaaaaaaaaa1111", "sk-ant-bbbbbbbbbbbb2222")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_env_style(tmp_path: Path) -> None:
    old = _write(
        tmp_path,
        "old.env",
        f"# the old agent\nexport CLAUDE_API_KEYS={KEYS[0]},{KEYS[1]}\nCLAUDE_DAILY_LIMIT=1000\n"
        "CLAUDE_CLI_PATH='/opt/claude/bin/claude'\nSOMETHING_ELSE=1\n",
    )
    migration = read_old(old)
    assert migration.shape == "env"
    assert migration.doc["providers"] == {
        "claude": {
            "type": "claude_cli",
            "executable": "/opt/claude/bin/claude",
            "subscriptions": [
                {"name": "key-1", "api_key_env": "CLAUDE_API_KEY_1", "limits": {"requests_per_day": 1000}},
                {"name": "key-2", "api_key_env": "CLAUDE_API_KEY_2", "limits": {"requests_per_day": 1000}},
            ],
        }
    }
    assert migration.keys == {"CLAUDE_API_KEY_1": KEYS[0], "CLAUDE_API_KEY_2": KEYS[1]}
    assert migration.key_places[KEYS[1]] == ("claude", "key-2")
    assert migration.notes == ["SOMETHING_ELSE (not a setting of the older single-agent configuration)"]


def test_agents_list_in_json(tmp_path: Path) -> None:
    old = _write(
        tmp_path,
        "agents.json",
        '{"agents": [{"name": "main", "type": "claude", "api_key": "KEY0", "daily_limit": 500, "priority": 1},'
        ' {"name": "gpt", "type": "openai", "api_keys": ["sk-p1-xxxxxxxxxx", "sk-p2-yyyyyyyyyy"], "model": "gpt-4o",'
        ' "temperature": 0.2}, {"name": "local", "type": "ollama", "model": "llama3.1"}]}'.replace("KEY0", KEYS[0]),
    )
    migration = read_old(old)
    assert migration.shape == "agents"
    assert migration.doc["providers"] == {
        "main": {"type": "claude_cli", "priority": 1, "api_key_env": "MAIN_API_KEY",
                 "limits": {"requests_per_day": 500}},
        "gpt_1": {"type": "openai_compatible", "base_url": "https://api.openai.com/v1", "model": "gpt-4o",
                  "api_key_env": "GPT_API_KEY_1"},
        "gpt_2": {"type": "openai_compatible", "base_url": "https://api.openai.com/v1", "model": "gpt-4o",
                  "api_key_env": "GPT_API_KEY_2"},
        "local": {"type": "openai_compatible", "base_url": "http://localhost:11434/v1", "model": "llama3.1"},
    }  # fmt: skip
    assert migration.notes == ["agents[1].temperature (no equivalent in the providers format)"]


def test_seed_plan_shape_and_a_key_already_named(tmp_path: Path) -> None:
    old = _write(
        tmp_path,
        "seed.yaml",
        "strategy: cost_based\nproviders:\n  claude:\n    type: claude_cli\n"
        f"    api_keys: [{KEYS[0]}, '${{TEAM_B_KEY}}']\n    rate_limit: 1000/hour\n"
        "  router:\n    type: openai_compatible\n    base_url: https://openrouter.ai/api/v1\n    model: x/y\n"
        "    api_key: sk-or-zzzzzzzzzzzz\n    rate_limit: 60 per minute\n",
    )
    migration = read_old(old)
    assert migration.shape == "seed" and migration.doc["strategy"] == "cost_based"
    claude = migration.doc["providers"]["claude"]
    assert [s["api_key_env"] for s in claude["subscriptions"]] == ["CLAUDE_API_KEY_1", "TEAM_B_KEY"]
    assert claude["subscriptions"][0]["limits"] == {"requests_per_hour": 1000}
    assert migration.doc["providers"]["router"]["limits"] == {"requests_per_minute": 60}
    assert migration.keys == {"CLAUDE_API_KEY_1": KEYS[0], "ROUTER_API_KEY": "sk-or-zzzzzzzzzzzz"}


def test_the_written_file_holds_no_key_and_validates(tmp_path: Path) -> None:
    old = _write(tmp_path, "seed.yaml", f"providers:\n  api:\n    type: anthropic\n    api_keys: [{KEYS[0]}]\n")
    migration = read_old(old)
    out = tmp_path / "providers.yaml"
    keys = tmp_path / "home" / "keys.env"
    out.write_text(migration.render(out, keys))
    text = out.read_text()
    assert KEYS[0] not in text and load_line(keys) in text
    assert yaml.safe_load(text)["providers"]["api"]["api_key_env"] == "API_API_KEY"
    result = validate_file(out, secrets=migration.keys.get)
    assert result.problems == []


def test_keys_file_is_owner_only_and_merges(tmp_path: Path) -> None:
    keys = tmp_path / "keys.env"
    write_keys({"A_KEY": "it's $secret"}, keys)
    write_keys({"B_KEY": "two"}, keys)
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    lines = keys.read_text().splitlines()
    assert lines[1:] == ["A_KEY='it'\"'\"'s $secret'", "B_KEY=two"]  # shell-quoted: `set -a; . file` reads it back


def test_migrate_then_rollback_byte_for_byte(tmp_path: Path) -> None:
    """In place over OLD itself (a seed file named providers.yaml) and with the keys file existing before."""
    original = f"# seed\r\nproviders:\r\n  claude: {{type: claude_cli, api_keys: [{KEYS[0]}]}}\r\n".encode()
    old = tmp_path / "providers.yaml"
    old.write_bytes(original)
    keys = keys_file_path()
    keys.parent.mkdir(parents=True, exist_ok=True)
    keys.write_bytes(b"# mine\nOTHER=1\n")
    keys.chmod(0o640)
    migration = read_old(old)
    record_change("migrate", "test", [old, keys])
    old.write_text(migration.render(old, keys))
    write_keys(migration.keys, keys)
    assert old.read_bytes() != original and "OTHER=1" in keys.read_text()
    rollback()
    assert old.read_bytes() == original
    assert keys.read_bytes() == b"# mine\nOTHER=1\n" and stat.S_IMODE(keys.stat().st_mode) == 0o640
