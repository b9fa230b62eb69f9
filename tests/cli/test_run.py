"""`switchboard` as a user runs it: real subprocesses, a temporary ledger and Prefect home."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def managed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The default path: no PREFECT_API_URL, so `switchboard run` starts the managed local server (on a free
    port here) and later runs reuse it. Stopped when the module is done."""
    from flows import stop_server

    home = tmp_path_factory.mktemp("home")
    settings = {
        "SWITCHBOARD_HOME": str(home),
        "SWITCHBOARD_PREFECT_PORT": str(free_port()),
        "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-home")),
    }
    yield settings
    stop_server(int(settings["SWITCHBOARD_PREFECT_PORT"]), data_dir=home, prefect_home=Path(settings["PREFECT_HOME"]))


@pytest.fixture
def env(tmp_path: Path, managed_server: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("SWITCHBOARD_PREFECT", "PREFECT_API_URL")}
    return {**base, **managed_server, "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}


def switchboard(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT
    )


def _db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "ledger.db")


def test_failing_top_provider_fails_over_for_every_task(env: dict[str, str], tmp_path: Path) -> None:
    result = switchboard(
        "run",
        str(EXAMPLES / "pr-review.yaml"),
        "--providers",
        str(EXAMPLES / "providers-failover.yaml"),
        "--json",
        "--explain",
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)  # exactly one JSON object, nothing else on stdout
    assert len(out["tasks"]) == 12
    flaky_calls = 0
    for task in out["tasks"]:
        assert task["status"] == "completed" and task["provider"] == "steady"
        chain = [(a["provider"], a["outcome"]) for a in task["attempts"]]
        if chain[0][0] == "flaky":
            flaky_calls += 1
            assert chain == [("flaky", "unavailable"), ("steady", "success")]
        else:
            # flaky's circuit opened (or was still probing): it was skipped, and the decision says why
            assert chain == [("steady", "success")]
            assert task["decision"]["skipped"]["flaky"] in ("circuit_open", "circuit_probing")
        assert task["cost_usd"] == pytest.approx(sum(a["cost_usd"] for a in task["attempts"]))
    # the breaker stops sending work to the always-failing provider: at most failure_threshold (5) calls, plus
    # the probes (probe_in_flight, 2) that were already in flight when it opened
    assert 1 <= flaky_calls <= 5 + 2
    assert out["totals"]["failovers"] == flaky_calls and out["totals"]["completed"] == 12
    # the run went to the managed local server, whose UI page for it is printed
    port = env["SWITCHBOARD_PREFECT_PORT"]
    assert out["run"]["ui_url"] == f"http://127.0.0.1:{port}/runs/flow-run/{out['run']['flow_run_id']}"
    rows = (
        _db(tmp_path)
        .execute(
            "select provider_id, outcome, team from provider_usage where run_id = ? order by task_id, attempt",
            (out["run"]["id"],),
        )
        .fetchall()
    )
    assert len(rows) == 12 + flaky_calls
    assert {r[0] for r in rows if r[1] == "unavailable"} == {"flaky"} and {r[2] for r in rows} == {"platform"}

    shown = switchboard("show", out["run"]["id"], env=env)
    assert shown.returncode == 0 and "summary" in shown.stdout and "chosen steady" in shown.stdout
    listing = switchboard("runs", env=env)
    assert out["run"]["id"] in listing.stdout


def test_invalid_spec_exits_2_and_writes_nothing(env: dict[str, str], tmp_path: Path) -> None:
    spec = tmp_path / "cycle.yaml"
    spec.write_text(
        "name: c\ntasks:\n  - {id: a, type: t, prompt: a, depends_on: [b]}\n"
        "  - {id: b, type: t, prompt: b, depends_on: [a]}\n"
    )
    result = switchboard("run", str(spec), "--json", env=env, timeout=60)
    assert result.returncode == 2
    assert str(spec) in result.stderr and "cycle a -> b -> a" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert not (tmp_path / "ledger.db").exists()


def test_invalid_providers_file_names_provider_and_field(env: dict[str, str], tmp_path: Path) -> None:
    providers = tmp_path / "providers.yaml"
    providers.write_text("providers:\n  fast: {type: local_mock, failure_rate: 3}\n")
    result = switchboard("run", str(EXAMPLES / "pr-review.yaml"), "--providers", str(providers), env=env, timeout=60)
    assert result.returncode == 2
    assert "providers.fast.failure_rate" in result.stderr and str(providers) in result.stderr
    assert not (tmp_path / "ledger.db").exists()


def test_ctrl_c_cancels_in_flight_calls_then_the_rerun_resumes(env: dict[str, str], tmp_path: Path) -> None:
    slow = tmp_path / "slow.yaml"
    slow.write_text("providers:\n  slow: {type: local_mock, latency_ms: 60000}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(EXAMPLES / "pr-review.yaml"), "--providers", str(slow), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the flow has started and the first call is in flight
        time.sleep(0.5)
        if (tmp_path / "ledger.db").exists():
            try:
                if _db(tmp_path).execute("select count(*) from runs where flow_run_id is not null").fetchone()[0]:
                    break
            except sqlite3.OperationalError:
                pass
    time.sleep(1.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-2000:]
    assert time.monotonic() - started < 30  # did not wait for the 60 s call
    out = json.loads(stdout)
    assert out["run"]["status"] == "interrupted"
    assert {t["status"] for t in out["tasks"]} == {"cancelled"}
    db = _db(tmp_path)
    assert db.execute("select task_id, outcome from provider_usage").fetchall() == [("analyze", "cancelled")]

    fast = tmp_path / "fast.yaml"
    fast.write_text("providers:\n  fast: {type: local_mock, latency_ms: 0}\n")
    again = switchboard("run", str(EXAMPLES / "pr-review.yaml"), "--providers", str(fast), "--json", env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = json.loads(again.stdout)
    assert resumed["run"]["id"] == out["run"]["id"] and resumed["totals"]["completed"] == 12
    analyze = next(t for t in resumed["tasks"] if t["id"] == "analyze")
    assert [a["outcome"] for a in analyze["attempts"]] == ["cancelled", "success"]
    assert [a["attempt"] for a in analyze["attempts"]] == [1, 2]


def _wide_spec(tmp_path: Path, tasks: int) -> Path:
    spec = tmp_path / "wide.yaml"
    spec.write_text(
        "name: wide\ntasks:\n"
        + "".join(f"  - {{id: t{n}, type: code_analysis, prompt: part {n}}}\n" for n in range(tasks))
    )
    return spec


def test_ctrl_c_right_after_the_run_row_is_written_ends_it_interrupted(env: dict[str, str], tmp_path: Path) -> None:
    """Ctrl-C within a second of the run row being created (while Prefect was still being imported) exited 130
    with nothing on stdout despite --json, and left the run `running`."""
    spec = _wide_spec(tmp_path, 30)
    slow = tmp_path / "slow.yaml"
    slow.write_text("providers:\n  slow: {type: local_mock, latency_ms: 200}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", str(spec), "--providers", str(slow), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if _db(tmp_path).execute("select count(*) from runs").fetchone()[0]:
                break
        except sqlite3.OperationalError:  # not created or not migrated yet
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)  # at once: the flow has not started yet
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    out = json.loads(stdout)  # still exactly one JSON object
    assert out["run"]["status"] == "interrupted"
    run_id = out["run"]["id"]
    db = _db(tmp_path)
    assert db.execute("select status from runs").fetchall() == [("interrupted",)]
    statuses = dict(db.execute("select status, count(*) from tasks group by status").fetchall())
    assert "pending" not in statuses and sum(statuses.values()) == 30  # every task accounted for
    assert f"resume {run_id}" in stderr

    fast = tmp_path / "fast.yaml"
    fast.write_text("providers:\n  fast: {type: local_mock, latency_ms: 0}\n")
    again = switchboard("run", str(spec), "--providers", str(fast), "--json", env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = json.loads(again.stdout)
    assert resumed["run"]["id"] == run_id and resumed["totals"]["completed"] == 30  # nothing lost


def _sigint_by_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_before_the_run_row_exists_writes_nothing_and_says_so(env: dict[str, str], tmp_path: Path) -> None:
    """Interrupted while `switchboard run` still checks its Prefect API: no run, no ledger, one line."""
    for _ in range(3):
        with socket.socket() as silent:  # accepts the health check's connection and never answers it
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            url = f"http://127.0.0.1:{silent.getsockname()[1]}/api"
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "run", str(EXAMPLES / "pr-review.yaml"), "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**env, "PREFECT_API_URL": url},
                cwd=ROOT,
                # As from a terminal: a suite started in the background (`cmd &` without job control) inherits
                # SIGINT ignored, and Python then keeps it ignored, so no Ctrl-C could reach the command.
                preexec_fn=_sigint_by_default,
            )
            silent.settimeout(60)
            connection, _ = silent.accept()  # the check is waiting for an answer now
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=60)
            connection.close()
        # The check gives up after 2 s: on a starved machine it can do so before the signal arrives, and then this
        # is not the moment under test (that run exited 1, "no answer within 2 s", having written nothing). Again.
        if not (proc.returncode == 1 and "no answer within" in stderr):
            break
        assert not (tmp_path / "ledger.db").exists()
    assert proc.returncode == 130, stderr[-2000:]
    assert stdout == "" and "Traceback" not in stderr
    assert stderr.strip() == "interrupted before the run started: nothing was written"
    assert not (tmp_path / "ledger.db").exists()


def test_the_failover_examples_flow_run_logs_each_tasks_routing_in_prefect(env: dict[str, str]) -> None:
    """The flow run's Logs tab tells the run's story (providers, failovers and their reasons, cost), while the
    terminal stays as quiet as before."""
    import httpx

    result = switchboard(
        "run",
        str(EXAMPLES / "pr-review.yaml"),
        "--providers",
        str(EXAMPLES / "providers-failover.yaml"),
        "--json",
        "--fresh",
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    flow_run_id = json.loads(result.stdout)["run"]["flow_run_id"]
    assert "flaky:" not in result.stderr and "failover" not in result.stderr  # nothing new on the terminal
    api = f"http://127.0.0.1:{env['SWITCHBOARD_PREFECT_PORT']}/api"
    messages: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the log handler ships in batches: give it a moment
        r = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200})
        messages = [log["message"] for log in r.json()]
        if sum("completed on steady" in m for m in messages) == 12:
            break
        time.sleep(0.5)
    stories = [m for m in messages if "completed on steady" in m]
    assert len(stories) == 12, messages
    assert any("flaky: unavailable (simulated) → steady: ok" in m and "1 failover" in m for m in stories)
    assert any("left out: flaky (circuit_open)" in m for m in stories)
    assert all("$" in m for m in stories)
