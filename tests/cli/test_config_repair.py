"""`switchboard config repair` and `rollback` as a user runs them."""

from __future__ import annotations

from pathlib import Path

from tests.cli.cli_kit import cli_env, switchboard


def test_repair_shows_the_diff_writes_and_rollback_restores(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    path = tmp_path / "p.yaml"
    original = (
        "version: 1\nproviders:\n  m:\n    type: local_mok   # keep me\n"
        "  a: {type: anthropic, api_key_env: SB_T_NONE}\n"
    )
    path.write_text(original)
    dry = switchboard("config", "repair", str(path), "--dry-run", env=env)
    assert "-    type: local_mok   # keep me\n+    type: local_mock   # keep me\n" in dry.stdout
    assert path.read_text() == original and "nothing written" in dry.stderr
    result = switchboard("config", "repair", str(path), env=env)
    assert result.returncode == 2  # the missing key is left for a person, never invented
    assert path.read_text() == original.replace("local_mok", "local_mock")
    assert "1 fix(es) written" in result.stderr and "`switchboard config rollback` restores it" in result.stderr
    assert "providers.a.api_key_env: the env var SB_T_NONE is not set" in result.stdout
    again = switchboard(
        "config",
        "repair",
        str(path),
        env=env,
    )
    assert "nothing to repair" in again.stderr
    back = switchboard("config", "rollback", env=env)
    assert back.returncode == 0 and f"restored {path}" in back.stderr
    assert path.read_text() == original
    nothing = switchboard("config", "rollback", env=env)
    assert nothing.returncode == 2 and "no change to roll back" in nothing.stderr


def test_a_sound_file_repairs_to_itself_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nproviders:\n  m: {type: local_mock}\n")
    result = switchboard("config", "repair", str(path), env=cli_env(tmp_path))
    assert result.returncode == 0 and result.stdout == "" and "nothing to repair" in result.stderr
