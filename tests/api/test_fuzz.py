"""Schemathesis against the OpenAPI document: every operation the app lists (read from the app
when the tests are collected, so routes added later are covered without touching this file; a
test checks the running server serves that same document), with an admin key so requests get
past auth and reach the handlers, then without a key. No generated request may get
a 5xx: bad input is the client's fault and must be a 4xx naming the field.

Bounded for `make test` (a few dozen cases per operation, derandomised so a run is repeatable);
`bench/fuzz.py` is the long run. The server and its graph are this module's own (the
`shop` fixture wipes the graph before and after), so random rules, catalogue rows, events and
campaigns written here never reach another module's tests.
"""

from __future__ import annotations

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import response_schema_conformance

from api.app import create_app
from graph.settings import load_settings
from tests.api.served import Shop
from tests.api.test_serving_api import shop

__all__ = ["shop"]  # the module-scoped fixture: a shop, a trained model, one key per role

pytestmark = pytest.mark.integration

#: Routes that answer without a key (everything else must say 401 to an anonymous caller).
OPEN = {"/healthz", "/readyz"}

FUZZ = hypothesis.settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


# At collection time, from the app itself: schemathesis' fixture-based (lazy) loading does not
# work with pytest 9.2 (it sets a removed `Function._nodeid`), and one test item per operation
# reads better anyway. `test_the_server_serves_the_document_fuzzed` ties it to the live server.
DOCUMENT = create_app(load_settings()).openapi()  # not get_settings(): it would cache
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture
def admin(shop: Shop) -> dict[str, str]:
    return {"Authorization": f"Bearer {shop.keys['admin']}"}


def test_the_server_serves_the_document_fuzzed(shop: Shop) -> None:
    served = shop.get("/openapi.json", role=None)
    assert served.status_code == 200, served.text
    assert served.json()["paths"] == DOCUMENT["paths"]


def _said(case: schemathesis.Case, response: schemathesis.Response) -> str:
    return (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}\n"
        f"reproduce: {case.as_curl_command()}"
    )


@schema.parametrize()
@FUZZ
def test_no_generated_request_gets_a_server_error(
    case: schemathesis.Case, shop: Shop, admin: dict[str, str]
) -> None:
    response = case.call(base_url=shop.base, headers=admin, timeout=60)
    assert response.status_code < 500, _said(case, response)
    if response.status_code < 300:
        # What a 2xx carries matches the schema the document promises.
        case.validate_response(response, checks=[response_schema_conformance], headers=admin)


@schema.parametrize()
@hypothesis.settings(FUZZ, max_examples=5)
def test_without_a_key_every_protected_route_says_401(case: schemathesis.Case, shop: Shop) -> None:
    response = case.call(base_url=shop.base, timeout=60)
    assert response.status_code < 500, _said(case, response)
    if (
        case.operation.path not in OPEN
        and case.meta is not None
        and case.meta.generation.mode.is_positive
    ):
        assert response.status_code == 401, _said(case, response)


# -- what the fuzzer found, pinned down ---------------------------------------------------------
def test_a_body_that_is_not_json_is_a_422_naming_the_body(shop: Shop) -> None:
    answer = httpx.post(
        f"{shop.base}/v1/events",
        content=b'[{"kind": "view", "customer_id": "C1", "product_id": "P1"}]',
        headers={"Authorization": f"Bearer {shop.keys['admin']}", "Content-Type": "text/plain"},
        timeout=30,
    )
    assert answer.status_code == 422, answer.text
    field = answer.json()["fields"][0]
    assert field["location"] == "body"
    assert "Content-Type: application/json" in field["reason"]
    assert field["value"].startswith('[{"kind"')  # echoed back as text, not bytes


@pytest.mark.parametrize("value", ["NaN", "-Infinity"])
def test_a_number_json_cannot_carry_is_a_422_naming_the_field(shop: Shop, value: str) -> None:
    # Python's JSON reader takes NaN and Infinity; the error answer must not try to echo them.
    body = (
        '[{"kind": "purchase", "customer_id": "C1", "product_id": "P1", "unit_price": '
        + value
        + "}]"
    )
    answer = httpx.post(
        f"{shop.base}/v1/events",
        content=body.encode(),
        headers={
            "Authorization": f"Bearer {shop.keys['admin']}",
            "Content-Type": "application/json",
        },
        timeout=30,
    )
    assert answer.status_code == 422, answer.text
    field = answer.json()["fields"][0]
    assert field["location"] == "body.0.unit_price", field
    assert field["value"] in ("nan", "-inf"), field


@pytest.mark.parametrize(
    ("route", "raw", "location"),
    [
        # A lone surrogate would be accepted into the event log, then fail to ship.
        (
            "/v1/events",
            b'[{"kind": "view", "customer_id": "C\\udb91", "product_id": "P1"}]',
            "body.0.customer_id",
        ),
        (
            "/v1/cypher/query",
            b'{"query": "RETURN $a", "params": {"a": 9223372036854775808}}',
            "body.params.a",
        ),
        ("/v1/cypher/query", b'{"query": "RETURN \\ud800 AS x"}', "body.query"),
    ],
)
def test_json_neo4j_cannot_take_is_a_422_naming_the_field(
    shop: Shop, route: str, raw: bytes, location: str
) -> None:
    answer = httpx.post(
        f"{shop.base}{route}",
        content=raw,
        headers={
            "Authorization": f"Bearer {shop.keys['admin']}",
            "Content-Type": "application/json",
        },
        timeout=30,
    )
    assert answer.status_code == 422, answer.text
    assert [f["location"] for f in answer.json()["fields"]] == [location]


def test_a_surrogate_pair_is_just_a_character(shop: Shop) -> None:
    # The guard must not refuse what is valid: an emoji escaped as a pair, a 64-bit integer.
    answer = httpx.post(
        f"{shop.base}/v1/cypher/query",
        content=b'{"query": "RETURN $a AS a, $b AS b", "params": {"a": "\\ud83d\\ude00", '
        b'"b": 9223372036854775807}}',
        headers={
            "Authorization": f"Bearer {shop.keys['admin']}",
            "Content-Type": "application/json",
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == [["\U0001f600", 9223372036854775807]]
