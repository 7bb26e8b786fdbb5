"""schemathesis against the notify server's OpenAPI (``/openapi.json``): no generated request gets a 500.

Every operation the server describes gets a bounded number of generated requests (``EXAMPLES``, kept small so
the whole run stays well under a minute per database). Requests carry real credentials so the authenticated
paths run past the auth check: the admin token on the ``/v1/projects`` routes and a real project's secret
elsewhere, with ``project_id`` set to that project's id on most of them (the rest keep the generated id, so
unknown projects are exercised too). Anything under 500 is an answer (400, 401, 404, 413, 422, 429 all fine);
a 5xx is a bug: it gets a regression test beside the route's other tests and the smallest server fix.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.integration.conftest import POSTGRES_URL, _drop_schema, _postgres_reachable, service_unavailable
from tests.integration.notify_stack import ADMIN, Dapp, Stack, stack_in_thread
from wcnotify.notify.api import build_app
from wcnotify.notify.service import NotifyConfig, NotifyService

EXAMPLES = 12


def _openapi() -> dict[str, Any]:
    """The document the server serves at /openapi.json, built without binding or touching a database
    (test_openapi_describes_the_dapp_api checks the served one; schemathesis needs it at collection)."""
    nowhere = "http://127.0.0.1:9"
    service = NotifyService(NotifyConfig(relay_url=nowhere, keys_urls=(nowhere,), database_url="sqlite://",
                                         admin_token=ADMIN, seed="openapi"), nowhere)
    return build_app(service).openapi()


schema = schemathesis.openapi.from_dict(_openapi())


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack_and_dapp(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Dapp]]:
    """One live stack per database for every operation (a fresh one per operation would cost ~1 s each)."""
    schema_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'wcnotify.db'}"
    else:
        problem = _postgres_reachable()
        if problem:
            service_unavailable(problem)
        schema_name = f"t_{os.urandom(6).hex()}"
        url = f"{POSTGRES_URL}?search_path={schema_name}"
    try:
        with stack_in_thread(url) as (stack, loop):
            dapp = asyncio.run_coroutine_threadsafe(stack.create_dapp(), loop).result(30)
            yield stack, dapp
    finally:
        if schema_name:
            _drop_schema(schema_name)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_500(case: Any, stack_and_dapp: tuple[Stack, Dapp]) -> None:
    stack, dapp = stack_and_dapp
    path = case.operation.path
    admin = path.startswith("/v1/projects") or path == "/metrics"
    headers = dict(case.headers or {})
    headers["authorization"] = f"Bearer {ADMIN if admin else dapp.secret}"
    case.headers = headers
    if case.path_parameters and "project_id" in case.path_parameters and len(repr(case.body)) % 4:
        case.path_parameters["project_id"] = dapp.project_id
    response = case.call(base_url=stack.notify_url, timeout=10)
    assert response.status_code < 500, (case.method, case.formatted_path, case.query, case.body,
                                        response.status_code, response.text[:500])
    if path.endswith("/secret/rotate") and response.status_code == 200 \
            and response.json()["projectId"] == dapp.project_id:
        dapp.secret = response.json()["secret"]  # the later operations authenticate with the new secret
