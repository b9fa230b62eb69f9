#!/usr/bin/env python3
"""A stand-in for the Claude Code CLI in headless mode, faithful to the wire formats in PROVIDERS.md section 1.

Tests put a `claude` wrapper that runs this script first on PATH. Behaviour comes from a JSON scenario file
named by FAKE_CLAUDE_SCENARIO:

    {"default": STEP | [STEP, ...],            # used when nothing more specific matches
     "by_config_dir": {"<basename or path of CLAUDE_CONFIG_DIR>": STEP | [STEP, ...]},
     "api_key": STEP | [STEP, ...],             # when ANTHROPIC_API_KEY is set and no config dir matched
     "version_exit_code": 0}

A list is consumed one step per invocation for that key (the last step repeats). A STEP is an object:
    kind: success (default) | usage_limit | api_error | api_retry | max_turns | garbage | exit_silent | sleep
          | plain_text
    result, message, status (api_error_status), include_status (default true), subtype, model, usage,
    cost (null = omit total_cost_usd), rate_limit_events ([rate_limit_info, ...]), exit_code, stderr,
    sleep_s, hold_s (seconds between the rate-limit events and the result, as a long agent run takes),
    spawn_grandchild, echo_api_key (prints the key to stderr, as a misbehaving CLI might),
    require_key_sha256 (answer 401 unless ANTHROPIC_API_KEY hashes to this, so tests check the key by hash).
    api_retry: the API request fails with `status` (401, 403, 429, 529, 500, or null for no connection) and the
    CLI retries by itself, printing one `api_retry` line per retry and sleeping the announced delay times
    `delay_scale` (default 1) before the next request: `retries` of them (default max_retries, 10), then
    `then` ("error", the default: the error result the CLI gives up with; or "success"). Delays grow like
    the real CLI's (500 ms doubling, plus jitter fixed here at 5%), or are `retry_after_s` for a 429 that
    carries one. Each request is logged as {"event": "request", "pid", "n"}.

Formats checked against the real CLI (`@anthropic-ai/claude-code` 2.1.197, `-p --output-format stream-json
--verbose`, ANTHROPIC_BASE_URL at tests/fakes/fake_messages_api.py): the init line, `api_retry` lines, the
error results after a 401 / repeated 529 / 429, `rate_limit_event` lines and the usage-limit result. The
legacy `Claude AI usage limit reached|<epoch>` result predates 2.x and comes only from this fake.

Each invocation appends one JSON line to FAKE_CLAUDE_LOG: argv, cwd, the CLAUDE_CONFIG_DIR value, which
credential variables were present (names and booleans only, never values), which credential the real CLI
would use (`auth_source`, by its precedence in PROVIDERS.md 1.5), the scenario key, the pid and the start
time; a run with `hold_s` also logs a `finished` event with its end time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

VERSION = "2.1.197 (Claude Code)"
MAX_RETRIES = 10
# The CLI's `error` word for a failed request's status (checked against 2.1.197).
_RETRY_ERRORS = {401: "authentication_failed", 403: "authentication_failed", 429: "rate_limit", 529: "overloaded"}
# What the CLI prints as the result when it gives up (2.1.197; 529 gives api_error_status null).
_GIVE_UP = {
    401: (401, "Invalid API key · Fix external API key"),
    403: (403, "Failed to authenticate. API Error: 403 Forbidden"),
    429: (429, "API Error: Request rejected (429) · This request would exceed your account's rate limit."),
    529: (None, "API Error: Repeated 529 Overloaded errors. The API is at capacity — this is usually temporary."),
}
DEFAULT_MODEL = "claude-sonnet-4-5-20250929"
_ALIASES = {"sonnet": DEFAULT_MODEL, "opus": "claude-opus-4-5-20251101", "haiku": "claude-haiku-4-5-20251001"}
_VALUE_FLAGS = {
    "--output-format",
    "--model",
    "--max-turns",
    "--append-system-prompt",
    "--allowedTools",
    "--system-prompt",
    "--tools",
}


def parse_args(argv: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {"print": False, "verbose": False, "prompt": None}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            args["prompt"] = " ".join(argv[i + 1 :])
            break
        if arg in ("-p", "--print"):
            args["print"] = True
        elif arg == "--verbose":
            args["verbose"] = True
        elif arg in _VALUE_FLAGS:
            args[arg.lstrip("-")] = argv[i + 1]
            i += 1
        elif arg.startswith("-"):
            print(f"error: unknown option '{arg}'", file=sys.stderr)
            sys.exit(1)
        else:
            args["prompt"] = arg
        i += 1
    return args


def load_scenario() -> dict[str, Any]:
    path = os.environ.get("FAKE_CLAUDE_SCENARIO")
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def scenario_key(scenario: dict[str, Any]) -> str:
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
    by_dir = scenario.get("by_config_dir") or {}
    if config_dir:
        for candidate in (config_dir, os.path.basename(config_dir.rstrip("/"))):
            if candidate in by_dir:
                return f"config_dir:{candidate}"
    if os.environ.get("ANTHROPIC_API_KEY") and "api_key" in scenario:
        return "api_key"
    return "default"


def steps_for(scenario: dict[str, Any], key: str) -> Any:
    if key.startswith("config_dir:"):
        return scenario["by_config_dir"][key.split(":", 1)[1]]
    return scenario.get(key, {})


def log_and_pick(scenario: dict[str, Any], key: str, record: dict[str, Any]) -> dict[str, Any]:
    """Append the invocation to the log and return this invocation's step (locked: calls may run in parallel)."""
    steps = steps_for(scenario, key)
    log_path = os.environ.get("FAKE_CLAUDE_LOG")
    index = 0
    if log_path:
        with open(log_path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            index = sum(1 for line in f if line.strip() and json.loads(line).get("key") == key)
            record["index"] = index
            f.write(json.dumps(record) + "\n")
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
    if isinstance(steps, list):
        return steps[min(index, len(steps) - 1)] if steps else {}
    return steps


def append_log(record: dict[str, Any]) -> None:
    log_path = os.environ.get("FAKE_CLAUDE_LOG")
    if log_path:
        with open(log_path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(json.dumps(record) + "\n")


# PROVIDERS.md 1.5: the CLI uses the first of these it finds; a config dir's own login comes last.
CLOUD_SWITCHES = ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY")
CLOUD_CREDENTIALS = ("AWS_BEARER_TOKEN_BEDROCK", "ANTHROPIC_FOUNDRY_API_KEY")


def auth_source() -> str:
    """Which credential the real CLI would bill this run to."""
    for name in (*CLOUD_SWITCHES, "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"):
        if os.environ.get(name):
            return name
    return "login"  # the OAuth login stored in CLAUDE_CONFIG_DIR (or ~/.claude)


def auth_status(scenario: dict[str, Any]) -> int:
    """`claude auth status --json` as 2.1.197 prints it: local only, no request. A config dir is logged in when
    it holds `.credentials.json` (or the scenario says `logged_in`)."""
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
    key = os.environ.get("ANTHROPIC_API_KEY")
    append_log({"event": "auth_status", "config_dir": config_dir, "has_api_key": bool(key)})
    if key:
        status = {
            "loggedIn": True,
            "authMethod": "api_key",
            "apiProvider": "firstParty",
            "apiKeySource": "ANTHROPIC_API_KEY",
        }
    elif scenario.get("logged_in", False) or (
        config_dir and os.path.exists(os.path.join(config_dir, ".credentials.json"))
    ):
        status = {
            "loggedIn": True,
            "authMethod": "claude.ai",
            "apiProvider": "firstParty",
            "email": None,
            "orgId": None,
            "orgName": None,
            "subscriptionType": "max",
        }
    else:
        status = {"loggedIn": False, "authMethod": "none", "apiProvider": "firstParty"}
    print(json.dumps(status, indent=2))
    return 0 if status["loggedIn"] else 1


def usage_block(step: dict[str, Any], prompt: str, text: str) -> dict[str, Any]:
    usage = {
        "input_tokens": len(prompt) // 4 + 3,
        "cache_creation_input_tokens": 7192,
        "cache_read_input_tokens": 14135,
        "output_tokens": len(text) // 4 + 1,
        "server_tool_use": {"web_search_requests": 0},
        "service_tier": "standard",
    }
    usage.update(step.get("usage") or {})
    return usage


def sonnet_cost(usage: dict[str, Any]) -> float:
    return (
        usage["input_tokens"] * 3.0
        + usage["output_tokens"] * 15.0
        + usage["cache_read_input_tokens"] * 0.30
        + usage["cache_creation_input_tokens"] * 3.75
    ) / 1_000_000


def result_object(step: dict[str, Any], prompt: str, model: str, session_id: str, num_turns: int) -> dict[str, Any]:
    kind = step.get("kind", "success")
    zero = {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
        "server_tool_use": {"web_search_requests": 0},
        "service_tier": "standard",
    }
    result: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 1234,
        "duration_api_ms": 1100,
        "num_turns": num_turns,
        "session_id": session_id,
    }
    if kind == "success":
        text = step.get("result", f"Fake answer to: {prompt[:60]}")
        usage = usage_block(step, prompt, text)
        result.update(result=text, stop_reason="end_turn", terminal_reason="completed")
    elif kind == "usage_limit":
        # What the CLI prints when a subscription is used up: subtype success, is_error true, no tokens.
        usage = zero
        result.update(is_error=True, result=step.get("message", "Claude AI usage limit reached|1755806400"))
        result["duration_api_ms"] = 0
    elif kind == "api_error":
        status = step.get("status", 500)
        status = int(status) if status is not None else None
        usage = usage_block(step, prompt, "")
        message = step.get("message") or f'API Error: {status} {{"type":"error","error":{{"type":"api_error"}}}}'
        result.update(is_error=True, result=message, errors=[], terminal_reason="api_error")
        if step.get("include_status", True) and status is not None:
            result["api_error_status"] = status
    elif kind == "max_turns":
        usage = usage_block(step, prompt, "partial")
        result.update(subtype="error_max_turns", is_error=True, terminal_reason="max_turns", errors=[])
    else:
        raise SystemExit(f"fake_claude: no result for kind {kind!r}")
    if "subtype" in step:
        result["subtype"] = step["subtype"]
    cost = step["cost"] if "cost" in step else sonnet_cost(usage)
    if cost is not None:
        result["total_cost_usd"] = cost
    result["usage"] = usage
    result["modelUsage"] = {
        model: {
            "inputTokens": usage["input_tokens"],
            "outputTokens": usage["output_tokens"],
            "cacheReadInputTokens": usage["cache_read_input_tokens"],
            "cacheCreationInputTokens": usage["cache_creation_input_tokens"],
            "webSearchRequests": 0,
            "costUSD": cost or 0.0,
            "contextWindow": 200000,
            "maxOutputTokens": 64000,
        }
    }
    result["permission_denials"] = []
    result["uuid"] = str(uuid.uuid4())
    return result


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def retry_loop(step: dict[str, Any], session_id: str, streaming: bool) -> dict[str, Any]:
    """The CLI's own retries after a failed request, as the real one prints them; returns the step to finish with."""
    status = step.get("status")
    error = _RETRY_ERRORS.get(status, "server_error" if isinstance(status, int) and status >= 500 else "unknown")
    retries = int(step.get("retries", MAX_RETRIES))
    scale = float(step.get("delay_scale", 1.0))
    for n in range(1, retries + 2):
        append_log({"event": "request", "pid": os.getpid(), "n": n})
        if n > retries:
            break
        if status == 429 and step.get("retry_after_s") is not None:
            delay_ms = float(step["retry_after_s"]) * 1000
        else:
            delay_ms = 500 * 2 ** (n - 1) * 1.05
        if streaming:
            emit(
                {
                    "type": "system",
                    "subtype": "api_retry",
                    "attempt": n,
                    "max_retries": MAX_RETRIES,
                    "retry_delay_ms": delay_ms,
                    "error_status": status,
                    "error": error,
                    "session_id": session_id,
                    "uuid": str(uuid.uuid4()),
                }
            )
        time.sleep(delay_ms / 1000 * scale)
    if step.get("then") == "success":
        return {k: v for k, v in step.items() if k not in ("kind", "status")}
    api_status, message = _GIVE_UP.get(status, (status, f"API Error: {status}"))
    return {"kind": "api_error", "status": api_status, "include_status": api_status is not None, "message": message,
            "usage": {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0,
                      "cache_creation_input_tokens": 0}, "cost": 0}  # fmt: skip


def main(argv: list[str]) -> int:
    scenario = load_scenario()
    if "--version" in argv or "-v" in argv:
        code = int(scenario.get("version_exit_code", 0))
        if code:
            print("fake claude: broken install", file=sys.stderr)
        else:
            print(VERSION)
        return code
    if argv[:2] == ["auth", "status"]:
        return auth_status(scenario)
    args = parse_args(argv)
    if not args["print"]:
        print("fake claude only supports -p", file=sys.stderr)
        return 2
    fmt = args.get("output-format", "text")
    if fmt == "stream-json" and not args["verbose"]:
        print("Error: When using --print, --output-format=stream-json requires --verbose", file=sys.stderr)
        return 1
    prompt = args["prompt"] if args["prompt"] is not None else sys.stdin.read()
    key = scenario_key(scenario)
    record: dict[str, Any] = {
        "argv": argv,
        "cwd": os.getcwd(),
        "config_dir": os.environ.get("CLAUDE_CONFIG_DIR"),
        "has_api_key": "ANTHROPIC_API_KEY" in os.environ,
        "has_auth_token": "ANTHROPIC_AUTH_TOKEN" in os.environ,
        "has_oauth_token": "CLAUDE_CODE_OAUTH_TOKEN" in os.environ,
        "key_vars": sorted(name for name in os.environ if "API_KEY" in name),
        "cloud_vars": sorted(name for name in (*CLOUD_SWITCHES, *CLOUD_CREDENTIALS) if name in os.environ),
        "auth_source": auth_source(),
        "started": time.time(),
        "prompt_via_stdin": args["prompt"] is None,
        "prompt_len": len(prompt),
        "key": key,
        "pid": os.getpid(),
    }
    step = log_and_pick(scenario, key, record)
    if step.get("spawn_grandchild"):
        # A tool the agent started: it must die with the CLI when the provider kills the process group.
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        append_log({"event": "grandchild", "pid": child.pid, "parent": os.getpid()})
    kind = step.get("kind", "success")

    wanted = step.get("require_key_sha256")
    if wanted and hashlib.sha256(os.environ.get("ANTHROPIC_API_KEY", "").encode()).hexdigest() != wanted:
        # Like the real CLI with a wrong key: an error result, never the key itself.
        step = {"kind": "api_error", "status": 401, "message": "Invalid API key · Please run /login"}
        kind = "api_error"
    if step.get("echo_api_key"):
        print(f"debug: using key {os.environ.get('ANTHROPIC_API_KEY')}", file=sys.stderr)
    if step.get("stderr"):
        print(step["stderr"], file=sys.stderr)
    if kind == "exit_silent":
        return int(step.get("exit_code", 1))
    if kind == "garbage":
        print("<html><body>502 Bad Gateway</body></html>")
        return int(step.get("exit_code", 0))
    if kind == "plain_text":
        print(step.get("message", "Claude AI usage limit reached|1755806400"))
        return int(step.get("exit_code", 1))

    model = step.get("model") or _ALIASES.get(args.get("model") or "", args.get("model") or DEFAULT_MODEL)
    session_id = str(uuid.uuid4())
    streaming = fmt == "stream-json"
    if streaming:
        emit(
            {
                "type": "system",
                "subtype": "init",
                "cwd": os.getcwd(),
                "session_id": session_id,
                "tools": ["Bash", "Edit", "Read"],
                "mcp_servers": [],
                "model": model,
                "permissionMode": "default",
                "apiKeySource": "ANTHROPIC_API_KEY" if os.environ.get("ANTHROPIC_API_KEY") else "none",
                "claude_code_version": VERSION.split()[0],
                "uuid": str(uuid.uuid4()),
            }
        )
    if kind == "sleep":
        time.sleep(float(step.get("sleep_s", 60)))
        return 0
    if kind == "api_retry":
        step = retry_loop(step, session_id, streaming)
        kind = step.get("kind", "success")
    for info in step.get("rate_limit_events") or []:
        if streaming:
            emit(
                {
                    "type": "rate_limit_event",
                    "rate_limit_info": info,
                    "uuid": str(uuid.uuid4()),
                    "session_id": session_id,
                }
            )
    if step.get("hold_s"):
        time.sleep(float(step["hold_s"]))
    result = result_object(step, prompt, model, session_id, num_turns=int(step.get("num_turns", 1)))
    if streaming and kind == "success":
        emit(
            {
                "type": "assistant",
                "message": {
                    "id": f"msg_{uuid.uuid4().hex[:24]}",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": result["result"]}],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {k: v for k, v in result["usage"].items() if k != "server_tool_use"},
                },
                "parent_tool_use_id": None,
                "session_id": session_id,
                "uuid": str(uuid.uuid4()),
            }
        )
    if streaming:
        emit(result)
    else:
        print(json.dumps(result))
    if step.get("hold_s"):
        append_log({"event": "finished", "pid": os.getpid(), "at": time.time()})
    default_exit = 1 if result["is_error"] else 0
    return int(step.get("exit_code", default_exit))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
