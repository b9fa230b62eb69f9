"""`config validate` against a corpus of broken providers files: every problem at once, each with its exact
file, line, field, message and fix hint."""

from __future__ import annotations

import http.server
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from configtools import CREDENTIALS_FILE, Problem, close_matches, edit_distance, validate_file

EXE = sys.executable  # an executable that exists, so claude_cli's `executable` check passes


def _problems(tmp_path: Path, text: str, name: str = "p.yaml", **env: str) -> list[str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    result = validate_file(path, secrets=lambda key: env.get(key))
    return [p.render().replace(str(path), name) for p in result.problems]


# (file text, the exact problems it must give, rendered as `validate` prints them)
CORPUS: dict[str, tuple[str, list[str]]] = {
    "unknown provider type": (
        "providers:\n  c:\n    type: claude_clii\n",
        [
            "p.yaml:3: providers.c.type: unknown provider type 'claude_clii'; did you mean 'claude_cli'?\n"
            "    fix: write `type: claude_cli`"
        ],
    ),
    "unknown type far from any": (
        "providers:\n  c:\n    type: gemini\n",
        [
            "p.yaml:3: providers.c.type: unknown provider type 'gemini'\n"
            "    fix: use one of anthropic, claude_cli, local_mock, openai_compatible "
            "(or install the package that provides 'gemini')"
        ],
    ),
    "missing type": (
        "providers:\n  c: {priority: 1}\n",
        [
            "p.yaml:2: providers.c.type: missing: every provider needs a type\n"
            "    fix: add `type:` with one of anthropic, claude_cli, local_mock, openai_compatible"
        ],
    ),
    "misspelt key, nested too": (
        "providers:\n  m:\n    type: local_mock\n    priorty: 2\n    limits: {requests_per_hr: 5}\n",
        [
            "p.yaml:4: providers.m.priorty: unknown key 'priorty' in providers.m; did you mean 'priority'?\n"
            "    fix: rename it to 'priority'",
            "p.yaml:5: providers.m.limits.requests_per_hr: unknown key 'requests_per_hr' in providers.m.limits; "
            "did you mean 'requests_per_hour'?\n    fix: rename it to 'requests_per_hour'",
        ],
    ),
    "a misspelt key beside the right one: no rename offered": (
        "budget: {}\nbudgett: {}\nproviders:\n  m: {type: local_mock}\n",
        [
            "p.yaml:2: budgett: unknown key 'budgett' in the top level; did you mean 'budget'?\n"
            "    fix: merge it into 'budget', which is also given, and remove it"
        ],
    ),
    "misspelt top-level key": (
        "strategy: priority_based\nbudgett: {max_cost_usd_per_run: 5}\nproviders:\n  m: {type: local_mock}\n",
        [
            "p.yaml:2: budgett: unknown key 'budgett' in the top level; did you mean 'budget'?\n"
            "    fix: rename it to 'budget'"
        ],
    ),
    "limit written as a rate": (
        "providers:\n  m:\n    type: local_mock\n    limits: {requests_per_minute: 1000/hour, tokens_per_day: lots}\n",
        [
            "p.yaml:4: providers.m.limits.requests_per_minute: '1000/hour': a limit is a count, its window is in the "
            "key\n    fix: write `requests_per_hour: 1000`",
            "p.yaml:4: providers.m.limits.tokens_per_day: 'lots' is not a number\n    fix: write a count, e.g. "
            "`requests_per_hour: 1000` (keys: requests_per_minute, requests_per_hour, requests_per_day, "
            "tokens_per_minute, tokens_per_hour, tokens_per_day, cost_usd_per_day)",
        ],
    ),
    "a rate under a key that is no limit": (
        "providers:\n  m:\n    type: local_mock\n    limits: {requests: 100/hour}\n",
        [
            "p.yaml:4: providers.m.limits.requests: '100/hour': a limit is a count, its window is in the key\n"
            "    fix: write `requests_per_hour: 100`"
        ],
    ),
    "limits as one string": (
        "providers:\n  m:\n    type: local_mock\n    limits: 50 per minute\n",
        [
            "p.yaml:4: providers.m.limits: '50 per minute' is not how limits are written: they are a mapping of "
            "counts per window\n    fix: write `limits: {requests_per_minute: 50}`"
        ],
    ),
    "the seed plan's rate_limit": (
        "providers:\n  m:\n    type: local_mock\n    rate_limit: 1000/hour\n",
        [
            "p.yaml:4: providers.m.rate_limit: the older `rate_limit: 1000/hour`; limits are now a mapping of "
            "counts per window\n    fix: write `limits: {requests_per_hour: 1000}`"
        ],
    ),
    "key values in the file": (
        "providers:\n  a:\n    type: anthropic\n    api_keys: [sk-1, sk-2]\n",
        [
            "p.yaml:4: providers.a.api_keys: key values do not belong in the providers file\n    fix: put each key "
            "in an env var and name it with `api_key_env:` (or `subscriptions:` with one `api_key_env` each); "
            "`switchboard config migrate` does this for older files"
        ],
    ),
    "duplicate provider names": (
        "providers:\n  m: {type: local_mock}\n  n: {type: local_mock}\n  m: {type: local_mock, priority: 3}\n",
        [
            "p.yaml:4: providers.m: 'm' is given twice (first at line 2); the later one silently wins, and only it "
            "is checked\n    fix: keep one of them (rename one if both are meant)"
        ],
    ),
    "duplicate subscription names": (
        f"providers:\n  c:\n    type: claude_cli\n    executable: {EXE}\n    subscriptions:\n"
        "      - {name: a, api_key_env: K1}\n      - {name: a, api_key_env: K2}\n",
        [
            "p.yaml:7: providers.c.subscriptions[1].name: the name 'a' is used twice (first at line 6)\n"
            "    fix: give each one a name of its own"
        ],
    ),
    "capability typo of a known task type": (
        "providers:\n  m:\n    type: local_mock\n    capabilities: [code_reveiw, bug_fix, my_own_type]\n",
        [
            "p.yaml:4: providers.m.capabilities[0]: 'code_reveiw' is not a task type Switchboard knows or this file "
            "uses elsewhere; did you mean 'code_review'?\n    fix: rename it to 'code_review'"
        ],
    ),
    "capability typo of a type the file uses": (
        "providers:\n  m:\n    type: local_mock\n    capabilities: [lint_python, lint_js]\n"
        "  n:\n    type: local_mock\n    capabilities: [lint_python]\n"
        "  o:\n    type: local_mock\n    capabilities: [lint_pyhton]\n",
        [
            "p.yaml:10: providers.o.capabilities[0]: 'lint_pyhton' is not a task type Switchboard knows or this "
            "file uses elsewhere; did you mean 'lint_python'?\n    fix: rename it to 'lint_python'"
        ],
    ),
    "values the models refuse": (
        "strategy: fastest\nproviders:\n  m:\n    type: local_mock\n    failure_rate: 2\n    fail_with: boom\n",
        [
            "p.yaml:1: strategy: unknown strategy 'fastest'; choose one of round_robin, least_loaded, "
            "fastest_response, priority_based, capability_based, cost_based, adaptive (got 'fastest')\n"
            "    fix: see docs/providers.md for this key's values",
            "p.yaml:5: providers.m.failure_rate: Input should be less than or equal to 1 (got 2)\n"
            "    fix: use a value that is less than or equal to 1",
            "p.yaml:6: providers.m.fail_with: Input should be 'rate_limited', 'quota_exhausted', 'overloaded', "
            "'unavailable', 'timeout', 'authentication', 'bad_request' or 'malformed_response' (got 'boom')\n"
            "    fix: use one of the values listed",
        ],
    ),
    "a required key missing": (
        "providers:\n  o:\n    type: openai_compatible\n    base_url: http://127.0.0.1:9/v1\n",
        ["p.yaml:2: providers.o.model: missing: this key is required\n    fix: add `model:`"],
    ),
    "the response cache's keys and values": (
        "cache: {enabled: true, ttl: 60}\nproviders:\n  m: {type: local_mock}\n",
        ["p.yaml:1: cache.ttl: unknown key 'ttl' in cache\n    fix: remove it; known keys: enabled, ttl_s"],
    ),
    "a response cache that never keeps an answer": (
        "cache: {enabled: true, ttl_s: 0}\nproviders:\n  m: {type: local_mock}\n",
        ["p.yaml:1: cache.ttl_s: Input should be greater than 0 (got 0)\n    fix: use a value that is greater than 0"],
    ),
    "a provider named like the cache": (
        "cache: {enabled: true}\nproviders:\n  cache: {type: local_mock}\n",
        [
            "p.yaml:3: providers.cache: 'cache' is a reserved name (the ledger's name for answers served from the"
            " response cache)\n    fix: see README, Providers file"
        ],
    ),
    "no providers": (
        "version: 1\n",
        [
            "p.yaml:1: providers: missing: the file names no providers\n"
            "    fix: add `providers:` with at least one provider (`switchboard init` writes one)"
        ],
    ),
    "broken YAML": (
        "providers:\n  m: {type: local_mock\n  n: {type: local_mock}\n",
        ["p.yaml:3: <file>: invalid YAML: expected ',' or '}', but got ':'\n    fix: fix the syntax at that line"],
    ),
    "missing key env var": (
        "providers:\n  a:\n    type: anthropic\n  o:\n    type: openai_compatible\n"
        "    base_url: http://127.0.0.1:9/v1\n    model: m\n    api_key_env: OPENAI_API_KEY\n",
        [
            "p.yaml:2: providers.a.api_key_env: the env var ANTHROPIC_API_KEY is not set\n"
            "    fix: export ANTHROPIC_API_KEY=... (or create the Prefect Secret block 'anthropic-api-key'), "
            "or set `enabled: false` on this provider",
            "p.yaml:8: providers.o.api_key_env: the env var OPENAI_API_KEY is not set\n"
            "    fix: export OPENAI_API_KEY=... (or create the Prefect Secret block 'openai-api-key'), "
            "or set `enabled: false` on this provider",
        ],
    ),
    "vendor batch settings: a typo, a bare true, settings that contradict": (
        "providers:\n  a:\n    type: anthropic\n    api_key_env: K\n    batch: {enabled: true, discout: 0.4}\n"
        "  o:\n    type: openai_compatible\n    base_url: http://127.0.0.1:9/v1\n    model: m\n    batch: true\n"
        "  p:\n    type: openai_compatible\n    base_url: http://127.0.0.1:9/v1\n    model: m\n"
        "    batch: {poll_initial_s: 60, poll_max_s: 30}\n",
        [
            "p.yaml:5: providers.a.batch.discout: unknown key 'discout' in providers.a.batch; did you mean "
            "'discount'?\n    fix: rename it to 'discount'",
            "p.yaml:10: providers.o.batch: batch: true is not how the batch API is turned on: it is a mapping of "
            "settings\n    fix: write `batch: {enabled: true}` (other keys: enabled, discount, gather_s, "
            "max_requests, poll_initial_s, poll_max_s, poll_factor, min_wait_s, live_margin_s)",
            "p.yaml:15: providers.p.batch: poll_max_s (30) must not be less than poll_initial_s (60)\n"
            "    fix: see docs/providers.md for this key's values",
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_each_broken_file_gives_its_exact_problems(tmp_path: Path, case: str) -> None:
    text, expected = CORPUS[case]
    assert _problems(tmp_path, text) == expected


def test_every_problem_of_a_file_comes_at_once_in_line_order(tmp_path: Path) -> None:
    text = (
        "budgett: {}\nproviders:\n  c: {type: claude_clii}\n  m:\n    type: local_mock\n    priorty: 2\n"
        "    failure_rate: 2\n    capabilities: [code_reveiw]\n  c: {type: local_mock}\n"
    )
    found = _problems(tmp_path, text)
    assert [line.split(": ", 2)[:2] for line in found] == [
        ["p.yaml:1", "budgett"],
        ["p.yaml:6", "providers.m.priorty"],
        ["p.yaml:7", "providers.m.failure_rate"],
        ["p.yaml:8", "providers.m.capabilities[0]"],
        ["p.yaml:9", "providers.c"],  # given twice: the later `c` is the one loaded, so its type is not wrong
    ]


def test_a_key_found_in_the_env_or_a_secret_block_is_no_problem(tmp_path: Path) -> None:
    text = CORPUS["missing key env var"][0]
    assert _problems(tmp_path, text, ANTHROPIC_API_KEY="sk-x", OPENAI_API_KEY="sk-y") == []
    assert len(_problems(tmp_path, text, OPENAI_API_KEY="sk-y")) == 1
    disabled = text.replace("type: anthropic\n", "type: anthropic\n    enabled: false\n")
    assert len(_problems(tmp_path, disabled, OPENAI_API_KEY="sk-y")) == 0


def test_an_api_token_without_its_variable(tmp_path: Path) -> None:
    text = (
        "api:\n  tokens:\n    - {name: ci, scope: read, token_env: SB_CI_TOKEN}\nproviders:\n  m: {type: local_mock}\n"
    )
    assert _problems(tmp_path, text) == [
        "p.yaml:3: api.tokens[0].token_env: the env var SB_CI_TOKEN is not set: `switchboard serve` cannot accept "
        "the token 'ci'\n    fix: export SB_CI_TOKEN=... before `switchboard serve`, or remove the token"
    ]
    assert _problems(tmp_path, text, SB_CI_TOKEN="t") == []


def test_with_blocks_looked_up_the_message_names_the_block(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("providers:\n  a: {type: anthropic, api_key_env: KEY_B}\n")
    [problem] = validate_file(path, secrets=lambda key: None, blocks_checked=True).problems
    assert problem.message == "neither the env var KEY_B nor a Prefect Secret block 'key-b' holds a key"


@pytest.mark.skipif(sys.platform == "darwin", reason="logins live in the keychain on macOS")
def test_a_config_dir_without_a_login(tmp_path: Path) -> None:
    (tmp_path / "team-a").mkdir()
    (tmp_path / "team-b").mkdir()
    (tmp_path / "team-b" / CREDENTIALS_FILE).write_text("{}")
    text = (
        f"providers:\n  c:\n    type: claude_cli\n    executable: {EXE}\n    subscriptions:\n"
        f"      - {{name: a, config_dir: {tmp_path / 'team-a'}}}\n"
        f"      - {{name: b, config_dir: {tmp_path / 'team-b'}}}\n"
        f"      - {{name: c, config_dir: {tmp_path / 'nowhere'}}}\n"
    )
    assert _problems(tmp_path, text) == [
        f"p.yaml:6: providers.c.subscriptions[0].config_dir: the config dir {tmp_path / 'team-a'} holds no Claude "
        f"Code login\n    fix: log it in once: CLAUDE_CONFIG_DIR={tmp_path / 'team-a'} claude, then /login",
        f"p.yaml:8: providers.c.subscriptions[2].config_dir: the config dir {tmp_path / 'nowhere'} does not "
        f"exist\n    fix: log it in once: CLAUDE_CONFIG_DIR={tmp_path / 'nowhere'} claude, then /login",
    ]


def test_the_default_login_and_the_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "login"))
    text = "providers:\n  c:\n    type: claude_cli\n    executable: /no/such/claude\n"
    found = _problems(tmp_path, text)
    assert found == [
        "p.yaml:2: providers.c: the config dir " + str(tmp_path / "login") + " does not exist\n"
        f"    fix: log it in once: CLAUDE_CONFIG_DIR={tmp_path / 'login'} claude, then /login",
        "p.yaml:4: providers.c.executable: the Claude Code CLI '/no/such/claude' is not found\n"
        "    fix: install it (npm install -g @anthropic-ai/claude-code) or set `executable:` to its path",
    ]
    (tmp_path / "login").mkdir()
    (tmp_path / "login" / CREDENTIALS_FILE).write_text("{}")
    assert _problems(tmp_path, text.replace("/no/such/claude", EXE)) == []


def test_a_json_file_gets_lines_too(tmp_path: Path) -> None:
    text = '{\n  "providers": {\n    "m": {\n      "type": "local_mock",\n      "priorty": 1\n    }\n  }\n}\n'
    assert _problems(tmp_path, text, name="p.json") == [
        "p.json:5: providers.m.priorty: unknown key 'priorty' in providers.m; did you mean 'priority'?\n"
        "    fix: rename it to 'priority'"
    ]


def test_a_sound_file_has_no_problem_and_gives_its_config(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("strategy: cost_based\nproviders:\n  m: {type: local_mock, capabilities: [code_review, x]}\n")
    result = validate_file(path, secrets=lambda key: None)
    assert result.problems == [] and result.config is not None and list(result.config.providers) == ["m"]


def test_keys_known_come_from_the_models(tmp_path: Path) -> None:
    """A key the models accept is accepted here with no list to update: every field of every provider type."""
    from routing import SwitchboardConfig, provider_class, provider_type_names

    for type_name in provider_type_names():
        model = provider_class(type_name).config_model
        for name in model.model_fields:
            if name in ("type", "subscriptions", "limits", "prices", "capabilities", "extra_headers", "extra_body"):
                continue
            path = tmp_path / "p.yaml"
            path.write_text(f"providers:\n  x:\n    type: {type_name}\n    {name}: ~\n")
            found = [p for p in validate_file(path, environment=False).problems if p.kind == "unknown_key"]
            assert found == [], (type_name, name)
    top = [n for n, f in SwitchboardConfig.model_fields.items() if f.exclude is not True and n != "providers"]
    for name in top:
        path = tmp_path / "p.yaml"
        path.write_text(f"{name}: ~\nproviders:\n  m: {{type: local_mock}}\n")
        assert [p for p in validate_file(path).problems if p.kind == "unknown_key"] == [], name


def test_did_you_mean_reaches_typos_not_other_names() -> None:
    assert edit_distance("code_reveiw", "code_review") == 1  # a swap is one edit
    assert close_matches("code_reveiw", ["code_review", "pr_review"]) == ["code_review"]
    assert close_matches("lint_py", ["lint_js"]) == []  # two edits on a short name: another name
    assert close_matches("priorty", ["priority", "prices"]) == ["priority"]


# --- --probe ---------------------------------------------------------------------------------------------------


@pytest.fixture
def answering_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)  # any answer means a server is there
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_probe_names_the_base_url_that_does_not_answer(tmp_path: Path, answering_server: str) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    path = tmp_path / "p.yaml"
    path.write_text(
        f"providers:\n  up: {{type: openai_compatible, model: m, base_url: '{answering_server}'}}\n"
        f"  down:\n    type: openai_compatible\n    model: m\n    base_url: {dead}\n"
    )
    assert validate_file(path, probe=False).problems == []
    [problem] = validate_file(path, probe=True).problems
    assert (problem.line, problem.field, problem.kind) == (6, "providers.down.base_url", "unreachable")
    assert problem.message.startswith(f"{dead} does not answer (ConnectError")
    assert problem.hint == "start the server (e.g. `ollama serve`), or correct the URL"


def test_no_rename_onto_a_key_that_is_there(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(CORPUS["a misspelt key beside the right one: no rename offered"][0])
    assert [p.fix for p in validate_file(path).problems] == [None]


def test_problems_are_typed_and_serialisable(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("providers:\n  m: {type: local_mok}\n")
    [problem] = validate_file(path).problems
    assert isinstance(problem, Problem) and problem.fix is not None and problem.fix.value == "local_mock"
    assert Problem.model_validate_json(problem.model_dump_json()) == problem
