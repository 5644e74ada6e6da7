"""Property-based tests against the published OpenAPI schema (schemathesis): for generated
requests of every operation, as an ACO admin and as a practice, the server never answers 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.api.world import session_world


@pytest.fixture(scope="session")
def api_app(tmp_path_factory):
    from allpayer.api.app import create_app

    w = session_world(tmp_path_factory)
    return create_app(w.db, w.store_url), w


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="session")
def api_schema(api_app):
    app, _ = api_app
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, api_app):
    _, w = api_app
    for role in ("aco_admin", "practice"):
        response = case.call(headers={"X-API-Key": w.keys[role]})
        case.validate_response(response, checks=(not_a_server_error,))
