"""`switchboard config validate|repair|migrate|rollback`: check a providers file, fix what is safe, bring an
older single-agent setup over, and undo that (configtools/ does the work)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from cli.app import EXIT_FAILED, EXIT_INVALID, EXIT_OK, app, err_console, out_console, print_error
from configtools import (
    MigrationError,
    NothingToRollBack,
    Problem,
    UsageFileError,
    Validation,
    import_usage,
    keys_file_path,
    load_line,
    plan_repair,
    read_old,
    record_change,
    rollback,
    validate_file,
    write_keys,
    write_repair,
)
from flows import secret_resolver
from ledger import open_ledger
from providers import SecretResolver
from routing import PROVIDERS_ENV

config_app = App(name="config", help="Check, repair and migrate providers files.")
app.command(config_app)

FileArgument = Annotated[
    Path | None, Parameter(help=f"The providers file (default: ${PROVIDERS_ENV}).", show_default=False)
]


def chosen_file(file: Path | None) -> Path | None:
    """FILE, else $SWITCHBOARD_PROVIDERS; None (after saying so) when neither names one."""
    if file is not None:
        return file
    named = os.environ.get(PROVIDERS_ENV)
    if named:
        return Path(named)
    print_error(f"name a providers file, or set {PROVIDERS_ENV}")
    return None


def check_file(file: Path, *, probe: bool = False, known: dict[str, str] | None = None) -> Validation:
    """The file's problems and, once it is sound, its environment's: keys through env vars and, where a Prefect
    API answers, Secret blocks (and `known` keys, just written but not loaded in this shell yet)."""
    resolver = secret_resolver()
    extra = known or {}

    def secrets(name: str) -> str | None:
        return extra.get(name) or resolver(name)

    lookup: SecretResolver = secrets
    return validate_file(file, secrets=lookup, blocks_checked=resolver.uses_blocks(), probe=probe)


def render_problems(problems: list[Problem]) -> None:
    for problem in problems:  # file contents in messages are never console markup
        out_console.print(problem.render(), highlight=False, markup=False, soft_wrap=True)


@config_app.command
def validate(
    file: FileArgument = None,
    *,
    probe: Annotated[bool, Parameter(negative="", help="Also call each base_url once to see that it answers.")] = False,
    as_json: Annotated[bool, Parameter(name="--json", negative="", help="Print one JSON object on stdout.")] = False,
) -> int:
    """Check a providers file and report every problem at once, each with file, line, field and a fix.

    Checks: YAML/JSON syntax, unknown keys and provider types (with did-you-mean), limits, duplicate names,
    capabilities that look like misspelt task types, values the models refuse, each key's env var or Prefect
    Secret block, Claude config dirs without a login, the `claude` executable; with --probe each base_url.
    Exit 0 when there is no problem, 2 otherwise.
    """
    path = chosen_file(file)
    if path is None:
        return EXIT_INVALID
    result = check_file(path, probe=probe)
    if as_json:
        payload = {
            "file": str(path),
            "ok": not result.problems,
            "providers": sorted(result.config.providers) if result.config else [],
            "problems": [p.model_dump(exclude={"fix"}) | {"fixable": p.fix is not None} for p in result.problems],
        }
        sys.stdout.write(json.dumps(payload) + "\n")
    elif result.problems:
        render_problems(result.problems)
        fixable = sum(p.fix is not None for p in result.problems)
        tail = f"; `switchboard config repair` can fix {fixable}" if fixable else ""
        err_console.print(
            f"{len(result.problems)} problem(s) in {path}{tail}", highlight=False, markup=False, soft_wrap=True
        )
    else:
        assert result.config is not None
        names = ", ".join(result.config.providers)
        out_console.print(
            f"{path}: ok ({len(result.config.providers)} providers: {names})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    return EXIT_INVALID if result.problems else EXIT_OK


@config_app.command
def repair(
    file: FileArgument = None,
    *,
    dry_run: Annotated[bool, Parameter(negative="", help="Show the diff, write nothing.")] = False,
) -> int:
    """Fix what is safe in a providers file, show the diff, and keep the old file for `config rollback`.

    Safe: a misspelt key, provider type or capability with one close match, an older key (rate_limit, cli_path),
    a limit written as a rate (1000/hour), the missing `version`. Comments and layout are kept. Never a
    credential. Exit 0 when the file then has no problem left, 2 when some need a person (they are listed).
    """
    path = chosen_file(file)
    if path is None:
        return EXIT_INVALID
    planned = plan_repair(path)
    if planned.changed:
        out_console.print(planned.diff(), highlight=False, markup=False, soft_wrap=True, end="")
        if dry_run:
            _note(f"{len(planned.applied)} fix(es) to make; nothing written (--dry-run)")
        else:
            change = write_repair(planned)
            _note(
                f"{len(planned.applied)} fix(es) written to {path}; the file as it was is kept "
                f"(change {change.number}): `switchboard config rollback` restores it"
            )
    else:
        _note(f"nothing to repair in {path}")
    # Once the file itself is sound, what is left is its environment's (a key, a login): check it as validate does.
    left = planned.remaining if planned.remaining or dry_run else check_file(path).problems
    if left:
        _note(f"{len(left)} problem(s) left for you to fix:")
        render_problems(left)
    return EXIT_INVALID if left else EXIT_OK


@config_app.command
def migrate(
    old: Path,
    *,
    out: Annotated[
        Path | None, Parameter(help="The providers file to write (default: providers.yaml beside OLD).")
    ] = None,
    usage: Annotated[Path | None, Parameter(help="Also import past usage from this CSV export.")] = None,
    provider: Annotated[
        str, Parameter(help="Provider of imported rows whose key the migration does not know.")
    ] = "imported",
) -> int:
    """Convert an older single-agent configuration into a providers file.

    OLD: env lines (CLAUDE_API_KEYS=k1,k2, CLAUDE_DAILY_LIMIT, CLAUDE_CLI_PATH, ...), a JSON or YAML `agents:`
    list, or the seed plan's `providers:` with `api_keys` and `rate_limit: 1000/hour`. Key values go to an
    owner-only env file in the data dir, never into the providers file; stdout is the one line that loads it.
    Undo with `switchboard config rollback`. Exit 0, 2 when OLD cannot be converted or the result has problems,
    1 when some usage rows were bad (the rest imported).
    """
    try:
        migration = read_old(old)
    except MigrationError as exc:
        print_error(str(exc))
        return EXIT_INVALID
    target = out or old.expanduser().absolute().parent / "providers.yaml"
    keys_file = keys_file_path()
    text = migration.render(target, keys_file)
    written = [target] + ([keys_file] if migration.keys else [])
    change = record_change("migrate", f"migrated {old} ({migration.shape}) to {target}", written)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text.encode("utf-8"))
    if migration.keys:
        write_keys(migration.keys, keys_file)
    _note(f"wrote {target} (providers: {', '.join(migration.doc['providers'])}) from {old} (change {change.number})")
    if migration.keys:
        _note(f"wrote {len(migration.keys)} key(s) to {keys_file} (mode 0600); load them with:")
        out_console.print(load_line(keys_file), highlight=False, markup=False, soft_wrap=True)
    for note in migration.notes:
        _note(f"not converted: {note}")
    code = EXIT_OK
    problems = check_file(target, known=migration.keys).problems
    if problems:
        _note(f"{len(problems)} problem(s) in the result, for you to fix (`switchboard config validate {target}`):")
        for problem in problems:
            err_console.print(problem.render(), highlight=False, markup=False, soft_wrap=True)
        # The file's own problems fail the migration; the environment's (no `claude` here yet) are for later.
        code = EXIT_INVALID if any(not p.environment for p in problems) else EXIT_OK
    if usage is not None:
        try:
            imported = import_usage(usage, open_ledger(), provider=provider, key_places=migration.key_places)
        except UsageFileError as exc:
            print_error(f"{exc}; nothing imported")
            return EXIT_INVALID
        _note(
            f"usage: {imported.imported} row(s) imported from {usage}, {imported.already} already in the ledger, "
            f"{len(imported.bad)} bad"
        )
        for bad in imported.bad:
            _note(f"  {bad.render(usage)}")
        if imported.bad and code == EXIT_OK:
            code = EXIT_FAILED
    _note("undo: `switchboard config rollback` (the usage rows stay: importing again adds nothing twice)")
    return code


@config_app.command(name="rollback")
def rollback_command(file: Annotated[Path | None, Parameter(help="Only a change that wrote this file.")] = None) -> int:
    """Undo the newest `config repair`, `config migrate` or `init` (that wrote FILE, if given): every file it wrote gets
    its old bytes and permissions back, byte for byte, or is removed if it did not exist before.

    Run it again to undo the change before that one. Exit 2 when there is nothing to roll back.
    """
    try:
        change = rollback(file)
    except NothingToRollBack as exc:
        print_error(str(exc))
        return EXIT_INVALID
    _note(f"rolled back change {change.number} ({change.action}, {change.at:%Y-%m-%d %H:%M:%S} UTC): {change.summary}")
    for before in change.files:
        _note(f"  {'restored' if before.existed else 'removed'} {before.path}")
    return EXIT_OK


def _note(text: str) -> None:
    err_console.print(text, highlight=False, markup=False, soft_wrap=True)


__all__ = [
    "check_file",
    "chosen_file",
    "config_app",
    "migrate",
    "render_problems",
    "repair",
    "rollback_command",
    "validate",
]
