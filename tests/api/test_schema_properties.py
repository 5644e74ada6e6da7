"""Property-based tests against the published OpenAPI schema (schemathesis): for generated
requests of every operation, as an ACO admin and as a practice, the server never answers 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

EXAMPLES = 15


def test_no_server_errors(app, world):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 20
    try:
        _check_all(operations, world)
    finally:  # generated logins fail and count against the test client's address: forget them
        app.state.limiter.store.execute("DELETE FROM api_login_failures")


def _check_all(operations, world) -> None:
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            for role in ("aco_admin", "practice"):
                response = case.call(headers={"X-API-Key": world.keys[role]})
                case.validate_response(response, checks=(not_a_server_error,))

        try:
            check()
        except Exception as exc:  # name the operation that failed
            raise AssertionError(f"{op.method.upper()} {op.path}: {exc}") from exc
