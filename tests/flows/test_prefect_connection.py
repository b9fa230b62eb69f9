"""Which Prefect API a run reports to (flows.server.prefect_api), and the runs that must not start: a stale
PREFECT_API_URL, a Dask runner without a server, a --deployment name that cannot be one. Each is one line on
stderr, the documented exit code, and nothing written. No Prefect flow is started here."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows import server
from flows.task_runners import runner_problem
from routing import RunnerSettings
from tests.cli.cli_kit import ROOT, cli_env, one_error_line, switchboard
from tests.ports import free_port

EXAMPLE = str(ROOT / "examples" / "pr-review.yaml")


@pytest.fixture
def not_prefect() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that answers 404 to everything: something listens, but not Prefect."""

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/api"
    httpd.shutdown()
    httpd.server_close()


# --- flows.server.prefect_api: one place decides, for `switchboard run` and `run_batch` alike ------------


def test_a_configured_url_nobody_answers_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    with pytest.raises(server.PrefectUnreachable) as caught:
        server.prefect_api(url)
    message = str(caught.value)
    assert "\n" not in message and f"PREFECT_API_URL={url}" in message and "connection refused" in message
    assert "start that server" in message and "unset PREFECT_API_URL" in message
    assert "SWITCHBOARD_PREFECT=ephemeral" in message
    # The managed server's own address: the way to start it is named.
    port = free_port()
    monkeypatch.setenv(server.PORT_ENV, str(port))
    with pytest.raises(server.PrefectUnreachable, match="switchboard server start"):
        server.check_api(f"http://127.0.0.1:{port}/api")


def test_a_configured_url_that_is_not_a_prefect_api_is_refused(not_prefect: str) -> None:
    with pytest.raises(server.PrefectUnreachable, match="answers HTTP 404 to /health, not like a Prefect API"):
        server.prefect_api(not_prefect)


def test_ephemeral_mode_is_asked_for_not_fallen_into(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(server.PREFECT_MODE_ENV, "ephemeral")
    assert server.prefect_api(None) is None
    monkeypatch.setenv(server.PREFECT_MODE_ENV, " Ephemeral ")
    assert server.ephemeral_requested()
    monkeypatch.delenv(server.PREFECT_MODE_ENV)
    assert not server.ephemeral_requested()


def test_ephemeral_mode_gives_the_temporary_server_time_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefect's 20 s default is missed on a busy machine; the user's own value is kept."""
    monkeypatch.setenv("SWITCHBOARD_PREFECT", "ephemeral")
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "")  # so teardown restores it
    monkeypatch.delenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
    assert server.prefect_api(None) is None
    assert float(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]) >= 60
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "33")
    assert server.prefect_api(None) is None
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "33"


def test_ephemeral_shutdown_noise_is_hidden_and_other_logs_are_not(tmp_path: Path) -> None:
    """Prefect's temporary server, stopped at exit while it still flushes, makes SQLAlchemy's pool log a
    CancelledError traceback through the root logger. The logging config quiet_ephemeral_shutdown sets (used by
    this process and, through the environment, by the temporary server) keeps that logger quiet, and only it."""
    script = (
        "from pathlib import Path\n"
        "from flows.server import quiet_ephemeral_shutdown\n"
        f"assert quiet_ephemeral_shutdown(Path({str(tmp_path)!r})) is not None\n"
        "import logging\n"
        # What Prefect's server app (the temporary server too) does first; this process's Prefect does it lazily.
        "from prefect.logging.configuration import setup_logging\n"
        "setup_logging()\n"
        "logging.getLogger('sqlalchemy.pool.impl.AsyncAdaptedQueuePool').error('Exception during reset or similar')\n"
        "logging.getLogger('some.library').error('a real problem')\n"
        "logging.getLogger('prefect.flow_runs').warning('a flow run warning')\n"
    )
    env = cli_env(tmp_path)
    env.pop("PREFECT_LOGGING_SETTINGS_PATH", None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Exception during reset" not in done.stderr
    assert "a real problem" in done.stderr and "a flow run warning" in done.stderr
    # A logging config of the user's own is left alone.
    env["PREFECT_LOGGING_SETTINGS_PATH"] = str(tmp_path / "mine.yml")
    kept = subprocess.run(
        [sys.executable, "-c", "from flows.server import quiet_ephemeral_shutdown as q; print(q())"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert kept.stdout.strip() == "None"


# --- switchboard run: refused before anything is written ----------------------------------------------


def test_run_with_a_stale_prefect_api_url_exits_1_in_one_line(tmp_path: Path) -> None:
    """After `switchboard server stop` or a reboot, an exported PREFECT_API_URL answers nothing: Prefect
    printed a 122-line traceback, exited 1 and left the run `running`."""
    url = f"http://127.0.0.1:{free_port()}/api"
    env = cli_env(tmp_path, PREFECT_API_URL=url)
    env.pop("SWITCHBOARD_PREFECT")
    result = switchboard("run", EXAMPLE, "--json", env=env, timeout=60)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert url in line and "unset PREFECT_API_URL" in line and "SWITCHBOARD_PREFECT=ephemeral" in line
    assert result.stdout == ""
    assert not (tmp_path / "ledger.db").exists()  # nothing written, not even an empty ledger


def test_a_dask_runner_in_ephemeral_mode_is_an_input_error(tmp_path: Path) -> None:
    """It gave a traceback and exit 1 after the run was recorded, leaving it `running`."""
    pytest.importorskip("prefect_dask")
    providers = tmp_path / "dask.yaml"
    providers.write_text("runner: {kind: dask}\nproviders:\n  m: {type: local_mock}\n")
    result = switchboard("run", EXAMPLE, "--providers", str(providers), "--json", env=cli_env(tmp_path), timeout=60)
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert str(providers) in line and "runner.kind" in line and "needs a Prefect server" in line
    assert result.stdout == "" and not (tmp_path / "ledger.db").exists()


def test_runner_problems_name_the_field() -> None:
    assert runner_problem(RunnerSettings(), has_server=False) is None
    pytest.importorskip("prefect_dask")
    assert runner_problem(RunnerSettings(kind="dask"), has_server=True) is None
    problem = runner_problem(RunnerSettings(kind="dask"), has_server=False)
    assert problem is not None and problem.startswith("runner.kind: 'dask' needs a Prefect server")


@pytest.mark.parametrize("name", ["process-batch", "a/b/c", "/x", "x/"])
def test_a_deployment_name_that_cannot_be_one_exits_2(tmp_path: Path, name: str) -> None:
    env = cli_env(tmp_path, PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api")
    result = switchboard("run", EXAMPLE, "--deployment", name, env=env, timeout=60)
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert f"--deployment: deployment {name!r}: expected FLOW/DEPLOYMENT" in line
