"""Privacy over HTTP on a real server and graph: opt-out set by the storefront takes effect
(non-personal lists, in nobody's paths), erasure through the API answers with a receipt and
leaves no trace of the customer in the graph or under the app home, and `kgrec customers
erase` against the running server has the server erase its own event log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import neo4j
import pytest

from graph.settings import Settings
from graph.synthetic import ShopSpec
from tests.api.served import Shop, served_shop
from tests.api.test_cli import run_kgrec
from tests.recommender.test_privacy import files_holding, graph_holding

pytestmark = pytest.mark.integration

SHOP = ShopSpec(customers=150, products=60, days=60, seed=11, lines_per_customer=8)  # as serving


class PrivateShop(Shop):
    def __init__(self, shop: Shop, home: Path, env: dict[str, str]) -> None:
        super().__init__(shop.base, shop.keys, shop.driver, shop.db)
        self.home = home
        self.env = env

    def buyers(self) -> list[str]:
        rows = self.query(
            "MATCH (c:Customer)-[:PURCHASED]->() WHERE coalesce(c.personalization, true) "
            "RETURN DISTINCT c.customer_id AS id ORDER BY id"
        )
        return [str(r["id"]) for r in rows]

    def list_of(self, customer: str) -> dict[str, object]:
        answer = self.get(f"/v1/customers/{customer}/recommendations", role="storefront")
        assert answer.status_code == 200, answer.text
        body: dict[str, object] = answer.json()
        return body

    def post_events(self, customer: str, products: list[str]) -> None:
        events = [{"kind": "view", "customer_id": customer, "product_id": p} for p in products]
        answer = self.post("/v1/events", events, "storefront")
        assert answer.status_code == 202, answer.text
        self.wait_for(
            lambda: self.get("/readyz", role=None).json()["events_pending"] == 0, "shipping"
        )


@pytest.fixture(scope="module")
def shop(
    neo4j_driver: neo4j.Driver, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateShop]:
    home = tmp_path_factory.mktemp("home")
    env = {"KGREC_HOME": str(home), "KGREC_SERVED_SAMPLE_RATE": "1", "KGREC_SERVED_MAX_PER_S": "0"}
    with served_shop(neo4j_driver, settings, tmp_path_factory, SHOP, env=env) as served:
        yield PrivateShop(served.shop, home, served.env)


def test_opt_out_through_the_api_makes_lists_non_personal_and_hides_the_customer(
    shop: PrivateShop,
) -> None:
    hidden = shop.buyers()[0]
    assert shop.list_of(hidden)["fallback"] is False
    path = f"/v1/customers/{hidden}/personalization"
    assert shop.put(path, {"enabled": False}, role="analyst").status_code == 403
    bad = shop.put(path, {"enabled": "perhaps"}, role="storefront")
    assert bad.status_code == 422 and bad.json()["fields"][0]["location"] == "body.enabled"
    answer = shop.put(path, {"enabled": False, "reason": "account page"}, role="storefront")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["personalization"] is False and body["previous"] is True
    assert body["created"] is False
    shop.wait_for(lambda: shop.list_of(hidden)["fallback"] is True, "a non-personal list")

    audit = shop.query(
        "MATCH (e:AuditEvent {event_id: $id}) RETURN e.action AS action, e.actor AS actor",
        id=body["audit_event_id"],
    )
    assert audit[0]["action"] == "opt_out" and audit[0]["actor"].startswith("key:")
    embedding = shop.query(
        "MATCH (c:Customer {customer_id: $c}) RETURN c.embedding IS NULL AS dropped", c=hidden
    )
    assert embedding[0]["dropped"] is True
    seen = 0
    for customer in shop.buyers()[:20]:
        for item in shop.list_of(customer)["items"]:  # type: ignore[attr-defined]
            for explanation in item["paths"]:
                seen += 1
                assert hidden not in {n["id"] for n in explanation["nodes"]}, explanation
    assert seen > 0

    back = shop.put(path, {"enabled": True}, role="storefront")
    assert back.status_code == 200 and back.json()["previous"] is False
    shop.wait_for(lambda: shop.list_of(hidden)["fallback"] is False, "a personal list again")


def test_erasure_through_the_api_answers_with_a_receipt_and_leaves_no_trace(
    shop: PrivateShop,
) -> None:
    customer = shop.buyers()[1]
    products = [r["id"] for r in shop.query("MATCH (p:Product) RETURN p.product_id AS id LIMIT 3")]
    shop.post_events(customer, [*products, "no-such-product"])
    shop.list_of(customer)  # a served list, written back as WAS_RECOMMENDED

    def relationships() -> int:
        return int(
            shop.query(
                "MATCH (:Customer {customer_id: $c})-[r]-() RETURN count(r) AS n", c=customer
            )[0]["n"]
        )

    # Served lists land in the graph once a second: wait until they have all landed.
    counts = [relationships()]
    while len(counts) < 3 or len(set(counts[-3:])) > 1:
        assert len(counts) < 60, counts
        time.sleep(1.5)
        counts.append(relationships())
    before = counts[-1]
    assert shop.query(
        "MATCH (:Customer {customer_id: $c})-[r:WAS_RECOMMENDED]->() RETURN count(r) AS n",
        c=customer,
    )[0]["n"]

    assert shop.delete(f"/v1/customers/{customer}", role="storefront").status_code == 403
    answer = shop.delete(f"/v1/customers/{customer}?reason=request%20by%20mail")
    assert answer.status_code == 200, answer.text
    receipt = answer.json()
    assert receipt["stores"]["graph"]["customer_nodes"] == 1
    assert receipt["stores"]["graph"]["relationships"] == before
    assert receipt["stores"]["graph"]["embeddings"] == 1
    assert receipt["stores"]["event_logs"]["events_shipped"] == 4
    assert receipt["stores"]["event_logs"]["dead_letters"] == 1
    assert receipt["stores"]["model_artifacts"]["versions"] == 1
    assert receipt["stores"]["serving_snapshot"] == {"refreshed": 1}
    assert customer not in answer.text and receipt["subject"].startswith("hmac-sha256:")

    assert graph_holding(shop.driver, shop.db, customer) == []
    assert files_holding(shop.home, customer) == []
    stored = shop.query(
        "MATCH (e:AuditEvent {event_id: $id}) RETURN properties(e) AS p", id=receipt["erasure_id"]
    )
    assert stored and json.loads(stored[0]["p"]["receipt"])["stores"] == receipt["stores"]

    again = shop.delete(f"/v1/customers/{customer}")
    assert again.status_code == 404 and again.json()["error"] == "not_found"
    assert "already erased" in again.json()["detail"]
    assert shop.delete("/v1/customers/never-seen-42").status_code == 404
    # The server forgot them at once: a brand-new visitor's fallback list. (Asked last: the
    # list itself is queued for write-back, so a repeated erasure right after finds it there.)
    assert shop.list_of(customer)["fallback"] is True


def test_cli_erasure_against_the_running_server(shop: PrivateShop) -> None:
    customer = shop.buyers()[2]
    shop.post_events(
        customer,
        [r["id"] for r in shop.query("MATCH (p:Product) RETURN p.product_id AS id LIMIT 2")],
    )
    refused = run_kgrec("customers", "erase", customer, env=shop.env)  # no --yes, no terminal
    assert refused.returncode != 0
    assert shop.query("MATCH (c:Customer {customer_id: $c}) RETURN c", c=customer)

    result = run_kgrec("customers", "erase", customer, "--yes", "--json", env=shop.env)
    assert result.returncode == 0, result.stderr
    receipt = json.loads(result.stdout)
    # The server holds the event log: its shipper erased the customer's lines on request.
    assert receipt["stores"]["event_logs"]["logs"] == 1
    assert receipt["stores"]["event_logs"]["events_shipped"] == 2
    assert "logs_deferred" not in receipt["stores"]["event_logs"] and receipt["notes"] == []
    assert graph_holding(shop.driver, shop.db, customer) == []
    assert files_holding(shop.home, customer) == []
    # The server's snapshot follows the new fingerprint (KGREC_SNAPSHOT_REFRESH_S, 30 s).
    shop.wait_for(lambda: shop.list_of(customer)["fallback"] is True, "the snapshot", 60)

    unknown = run_kgrec("customers", "erase", "never-seen-42", "--yes", env=shop.env)
    assert unknown.returncode == 3 and "in none of kgrec's stores" in unknown.stderr
    shown = run_kgrec("customers", "erasures", customer, env=shop.env)
    assert shown.returncode == 0 and receipt["erasure_id"] in shown.stdout


def test_events_prune_from_the_command_line(shop: PrivateShop) -> None:
    missing = run_kgrec("events", "prune", env=shop.env)
    assert missing.returncode == 2 and "--older-than" in missing.stderr
    shipped = run_kgrec("events", "prune", "--older-than", "3650", env=shop.env)
    assert shipped.returncode == 0, shipped.stderr
    assert "with 0 event(s)" in shipped.stdout  # only segments erasures emptied, if any
    with_setting = run_kgrec(
        "events", "prune", env={**shop.env, "KGREC_EVENT_RETENTION_DAYS": "3650"}
    )
    assert with_setting.returncode == 0 and "(3650 days)" in with_setting.stdout
