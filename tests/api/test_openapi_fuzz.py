"""Schemathesis against the API's OpenAPI document, in process: generated requests to every operation (valid and
invalid bodies, parameters, headers) never get a 5xx, and every answer matches the document (status codes,
headers, content types, bodies)."""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import checks

from api import TokenSet, create_app
from ledger import open_ledger
from routing import parse_config
from tests.api.api_kit import ADMIN_TOKEN, PROVIDERS

pytestmark = pytest.mark.slow
os.environ.setdefault("SB_TEST_REMOTE_KEY", "sk-fuzz-provider-secret-1234")


def _app() -> FastAPI:
    # Built when the module is collected: schemathesis makes its tests from the document then.
    home = Path(tempfile.mkdtemp(prefix="sb-fuzz-"))
    return create_app(
        parse_config(copy.deepcopy(PROVIDERS), str(home / "providers.yaml")),
        open_ledger(f"sqlite:///{home / 'ledger.db'}"),
        TokenSet([("ops", "admin", ADMIN_TOKEN)]),
    )


# Two servers: generated provider changes (a mock answering after an hour, say) must not slow the task routes.
_CHANGES, _REST = _app(), _app()
_PROVIDER_CHANGES = {"method": ["POST", "PUT", "DELETE"], "path_regex": "^/api/v1/providers"}
changes = schemathesis.openapi.from_asgi("/openapi.json", _CHANGES).include(**_PROVIDER_CHANGES)
rest = schemathesis.openapi.from_asgi("/openapi.json", _REST).exclude(**_PROVIDER_CHANGES)
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Every check but "a schema-valid request is accepted": provider settings and some cross-field rules (a credential
# in a base URL, the reserved id `usage`) are checked beyond what the document can say, and refused with a 422.
EXCLUDED = [checks.positive_data_acceptance]


@pytest.fixture(scope="module", autouse=True)
def _close_apps() -> object:
    yield
    for app in (_CHANGES, _REST):
        app.state.switchboard.close()


@changes.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_provider_changes_never_error_or_break_the_document(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AUTH, excluded_checks=EXCLUDED)


@rest.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_other_operations_never_error_or_break_the_document(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AUTH, excluded_checks=EXCLUDED)
