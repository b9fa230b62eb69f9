"""`switchboard init`: look at what this machine has, propose providers, probe them if asked, write a commented
providers file and validate it. Interactive (rich prompts), or driven entirely by flags with --yes."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter
from rich.prompt import Confirm, Prompt

from cli.app import EXIT_FAILED, EXIT_INVALID, EXIT_OK, app, out_console, print_error
from configtools import (
    OLLAMA_URL,
    VLLM_URL,
    Detected,
    Proposal,
    detect,
    probe,
    propose,
    record_change,
    render_providers_file,
    validate_file,
)
from ledger import data_dir
from routing import PROVIDERS_ENV, STRATEGY_NAMES


def _say(text: str = "") -> None:
    out_console.print(text, highlight=False, markup=False, soft_wrap=True)


@app.command
def init(
    *,
    out: Annotated[Path | None, Parameter(help="Where to write (default: providers.yaml in the data dir).")] = None,
    yes: Annotated[bool, Parameter(negative="", help="Take every proposal and overwrite without asking.")] = False,
    probe_providers: Annotated[
        bool | None,
        Parameter(name="--probe", negative="--no-probe", help="Health-check each provider (asked when omitted)."),
    ] = None,
    only: Annotated[
        tuple[str, ...], Parameter(help="Only these proposals, by name (claude, anthropic, openai, ollama, ...).")
    ] = (),
    mock: Annotated[bool, Parameter(negative="", help="Also add a local_mock provider.")] = False,
    strategy: Annotated[str, Parameter(help="The default routing strategy.")] = "priority_based",
    ollama_url: Annotated[str, Parameter(help="Where to look for Ollama.")] = OLLAMA_URL,
    vllm_url: Annotated[str, Parameter(help="Where to look for vLLM.")] = VLLM_URL,
) -> int:
    """Set up a providers file from what this machine has.

    Detects the `claude` executable and its version, Claude config dirs holding a login (~/.claude*,
    $CLAUDE_CONFIG_DIR), API keys in ANTHROPIC_API_KEY, OPENAI_API_KEY, OPENROUTER_API_KEY and
    AZURE_OPENAI_API_KEY (names only: no key is written), and Ollama or vLLM on 127.0.0.1; proposes providers
    with priorities, limits and prices; probes each if asked; writes a commented file and validates it.
    Exit 0 when the written file validates, 2 when nothing could be proposed or it does not, 1 when declined.
    """
    try:
        return _init(out, yes, probe_providers, only, mock, strategy, ollama_url, vllm_url)
    except EOFError:  # the input ended (a script's answers ran out) before the setup was complete
        print_error("the input ended before the setup was complete: nothing written (use --yes for scripts)")
        return EXIT_FAILED


def _init(
    out: Path | None,
    yes: bool,
    probe_providers: bool | None,
    only: tuple[str, ...],
    mock: bool,
    strategy: str,
    ollama_url: str,
    vllm_url: str,
) -> int:
    started = time.monotonic()
    if strategy not in STRATEGY_NAMES:
        print_error(f"--strategy: unknown strategy {strategy!r}; choose one of {', '.join(STRATEGY_NAMES)}")
        return EXIT_INVALID
    _say("Looking at this machine ...")
    found = detect(ollama_url=ollama_url, vllm_url=vllm_url)
    proposals = propose(found, os.environ, mock=mock)
    _describe(found)
    if only:
        unknown = sorted(set(only) - {p.name for p in proposals})
        if unknown:
            print_error(f"--only: nothing proposed named {', '.join(unknown)}; proposed: {_names(proposals)}")
            return EXIT_INVALID
        proposals = [p for p in proposals if p.name in only]
    chosen = [p for p in proposals if yes or _accept(p)]
    if not chosen:
        print_error("no provider chosen: nothing written")
        return EXIT_FAILED
    for priority, proposal in enumerate(chosen, start=1):
        proposal.settings["priority"] = priority
    wants_probe = probe_providers if probe_providers is not None else (False if yes else _ask_probe())
    if wants_probe:
        chosen = _probe(chosen, yes)
        if not chosen:
            print_error("every provider failed its probe and was left out: nothing written")
            return EXIT_FAILED
    target = (out or data_dir() / "providers.yaml").expanduser().absolute()
    if (
        target.exists()
        and not yes
        and not Confirm.ask(
            f"{target} exists. Replace it (`switchboard config rollback` brings it back)?",
            default=False,
            console=out_console,
        )
    ):
        print_error(f"{target} kept: nothing written")
        return EXIT_FAILED
    change = record_change("init", f"wrote {target} with {_names(chosen)}", [target])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_providers_file(chosen, strategy=strategy), encoding="utf-8")
    _say(f"Wrote {target} ({len(chosen)} provider(s): {_names(chosen)}; change {change.number}).")
    checked = validate_file(target)
    for problem in checked.problems:
        _say(problem.render())
    own = [p for p in checked.problems if not p.environment]
    _say(
        f"Validated: {'ok' if not checked.problems else f'{len(checked.problems)} problem(s)'}"
        f" in {time.monotonic() - started:.1f} s."
    )
    _say("Use it with:")
    _say(f"  export {PROVIDERS_ENV}={shlex.quote(str(target))}")
    return EXIT_INVALID if own else EXIT_OK


def _names(proposals: list[Proposal]) -> str:
    return ", ".join(p.name for p in proposals) or "none"


def _describe(found: Detected) -> None:
    claude = f"{found.claude_version or 'version unknown'} at {found.claude_path}" if found.claude_path else "not found"
    _say(f"  claude CLI:      {claude}")
    logins = ", ".join(f"{login.name} ({login.config_dir})" for login in found.logins)
    _say(f"  Claude logins:   {logins or 'none'}")
    _say(f"  API keys in env: {', '.join(found.key_variables) or 'none'} (names only)")
    local = ", ".join(f"{s.kind} at {s.base_url} ({', '.join(s.models) or 'no models'})" for s in found.local)
    _say(f"  local servers:   {local or 'none on 127.0.0.1'}")
    for note in found.notes:
        _say(f"  note: {note}")


def _accept(proposal: Proposal) -> bool:
    if not Confirm.ask(f"Add {proposal.name}: {proposal.summary}?", default=True, console=out_console):
        return False
    models = proposal.models
    if len(models) > 1:
        listed = ", ".join(f"{n}) {m}" for n, m in enumerate(models, start=1))
        while True:
            answer = Prompt.ask(f"  Model for {proposal.name}: {listed}", default="1", console=out_console).strip()
            if answer.isdigit() and 1 <= int(answer) <= len(models):
                proposal.settings["model"] = models[int(answer) - 1]
                break
            if answer in models:
                proposal.settings["model"] = answer
                break
            _say(f"  choose a number from 1 to {len(models)}, or a model's name")
    return True


def _ask_probe() -> bool:
    return Confirm.ask(
        "Probe each provider now (a health check: the models list or `claude --version`, nothing billed)?",
        default=True,
        console=out_console,
    )


def _probe(chosen: list[Proposal], yes: bool) -> list[Proposal]:
    kept = []
    results = {r.name: r for r in probe(chosen)}
    for proposal in chosen:
        result = results[proposal.name]
        detail = f" ({result.detail})" if result.detail else ""
        _say(f"  probe {proposal.name}: {result.status}{detail}")
        if result.ok or yes or Confirm.ask(f"Keep {proposal.name} anyway?", default=False, console=out_console):
            kept.append(proposal)
    return kept


__all__ = ["init"]
