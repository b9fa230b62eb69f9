"""The provider board in a real browser (Debian's headless Chromium over the DevTools protocol) against a running
API: it asks for a token, lists every configured provider, and shows a quota change pushed over the WebSocket."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from api.feed import FeedSettings
from tests.api.api_kit import ADMIN_TOKEN, READ_TOKEN, auth
from tests.api.chromium import Browser, available
from tests.api.conftest import Served

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not available(), reason="needs /usr/bin/chromium")]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    browser = Browser(tmp_path / "chromium-profile")
    yield browser
    browser.close()


def test_the_board_lists_every_provider_and_shows_a_pushed_quota_change(
    serve: Callable[[FeedSettings], Served], browser: Browser, tmp_path: Path
) -> None:
    served = serve(FeedSettings(interval_s=0.1, heartbeat_s=1.0))
    assert httpx.get(f"{served.base}/static/board.js").status_code == 200  # open, like the page
    browser.open(served.base + "/")
    browser.wait_for("document.readyState === 'complete' && !document.getElementById('login').hidden")
    browser.evaluate(
        f"document.getElementById('token').value = {READ_TOKEN!r};"
        "document.getElementById('login').requestSubmit(); true"
    )
    rows = browser.wait_for(
        "(() => { const r = [...document.querySelectorAll('#providers tbody tr')].map(t => t.dataset.provider);"
        " return r.length === 3 ? r : null; })()"
    )
    assert rows == ["fast", "backup", "remote"]
    assert browser.evaluate("getComputedStyle(document.getElementById('login')).display") == "none"
    used = "document.querySelector('[data-provider=fast] [data-limit=requests_per_hour]').textContent"
    assert browser.evaluate(used) == "requests_per_hour 0/5"
    assert browser.evaluate("location.href") == served.base + "/"  # the token is never in the URL
    assert browser.evaluate("localStorage.getItem('switchboard.token')") == READ_TOKEN

    task = httpx.post(
        f"{served.base}/api/v1/tasks", json={"type": "code_review", "prompt": "p"}, headers=auth(ADMIN_TOKEN)
    )
    assert task.json()["provider"] == "fast"
    browser.wait_for(f"{used} === 'requests_per_hour 1/5'")
    assert browser.evaluate("document.getElementById('connection').textContent").startswith("live")
    assert browser.evaluate("document.querySelector('[data-provider=fast] td.closed') !== null")  # circuit closed

    shot = browser.screenshot(tmp_path / "board.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("SWITCHBOARD_TEST_ARTIFACTS")
    if keep:  # CI keeps it with the run's artifacts
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "board.png")


def test_a_refused_token_brings_the_login_back(serve: Callable[[FeedSettings], Served], browser: Browser) -> None:
    served = serve(FeedSettings())
    browser.open(served.base + "/")
    browser.wait_for("document.readyState === 'complete' && !document.getElementById('login').hidden")
    browser.evaluate(
        "document.getElementById('token').value = 'wrong-token';document.getElementById('login').requestSubmit(); true"
    )
    browser.wait_for("document.getElementById('login-error').textContent === 'That token was refused.'")
    assert browser.evaluate("localStorage.getItem('switchboard.token')") is None
