"""Model governance and drift over HTTP, on a real server over a real graph: three registered
kg-gnn versions (validation NDCG@10 0.20 active, 0.30 better, 0.10 worse), one key per role.

Roles, unknown versions, the gate's 409, an activate + rollback round trip audited with the key,
the served model version changing under load with no failed request, then drift: the order mix
of the latest window against the training data (ok), and shifted into one category (alert)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import neo4j
import pytest

from gnn.snapshot import GraphSnapshot
from graph.keys import parse_key
from graph.settings import Settings
from graph.synthetic import ShopSpec
from tests.api.served import Shop, served_shop
from tests.api.test_app import api_server
from tests.api.test_cli import session_server_env
from tests.api.test_serving_api import a_buyer

pytestmark = pytest.mark.integration

SHOP = ShopSpec(customers=200, products=60, days=60, seed=23, lines_per_customer=10)
WINDOW_DAYS = 30


def _metrics(ndcg: float) -> dict[str, Any]:
    cell = {"value": ndcg, "low": ndcg - 0.01, "high": ndcg + 0.01}
    return {"validation": {"slices": {"all": {"users": 10, "metrics": {"ndcg@10": cell}}}}}


@dataclass
class Governed:
    shop: Shop
    snapshot: GraphSnapshot
    versions: dict[str, str] = field(default_factory=dict)  # first, better, worse


@pytest.fixture(scope="module")
def governed(
    neo4j_driver: neo4j.Driver, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Governed]:
    env = {
        "KGREC_EVENTS_DIR": str(tmp_path_factory.mktemp("events")),
        "KGREC_SERVED_SAMPLE_RATE": "0",
        "KGREC_ACTIVATION_MARGIN": "0.05",
        "KGREC_DRIFT_WINDOW_DAYS": str(WINDOW_DAYS),
        # The score-drift test serves every buyer once: all of them are the population.
        "KGREC_DRIFT_SCORES_MAX_PER_S": "0",
    }
    # Versions "first" (active), "better" and "worse" by validation NDCG@10.
    with served_shop(
        neo4j_driver,
        settings,
        tmp_path_factory,
        SHOP,
        seeds=(1, 2, 3),
        metrics=[_metrics(0.20), _metrics(0.30), _metrics(0.10)],
        env=env,
    ) as served:
        versions = dict(zip(("first", "better", "worse"), served.versions, strict=True))
        yield Governed(served.shop, served.snapshot, versions)


def key_id(shop: Shop, role: str) -> str:
    parsed = parse_key(shop.keys[role])
    assert parsed is not None
    return parsed.key_id


def active(shop: Shop) -> str:
    rows = shop.query("MATCH (v:ModelVersion {active: true}) RETURN v.version_id AS id")
    assert len(rows) == 1
    return str(rows[0]["id"])


# -- roles and input ------------------------------------------------------------------------------
ROUTES = [
    ("get", "/v1/admin/models"),
    ("get", "/v1/admin/models/audit"),
    ("get", "/v1/admin/models/{first}"),
    ("post", "/v1/admin/models/{better}/activate"),
    ("post", "/v1/admin/models/rollback"),
    ("get", "/v1/monitoring/drift"),
]


@pytest.mark.parametrize(("method", "template"), ROUTES)
def test_only_admin_keys_may_govern_models(governed: Governed, method: str, template: str) -> None:
    shop = governed.shop
    path = template.format(**governed.versions)
    for role in (None, "storefront", "merchandiser", "analyst"):
        answer = shop.get(path, role=role) if method == "get" else shop.post(path, {}, role=role)
        assert answer.status_code == (401 if role is None else 403), (role, answer.text)
        if role is not None:
            assert "admin" in answer.json()["detail"]
    assert active(shop) == governed.versions["first"]  # nothing was activated or rolled back


def test_versions_list_metrics_and_lineage(governed: Governed) -> None:
    answer = governed.shop.get("/v1/admin/models")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["active"] == body["serving"] == governed.versions["first"]
    listed = {v["version_id"]: v for v in body["versions"]}
    assert set(governed.versions.values()) <= set(listed)
    better = listed[governed.versions["better"]]
    assert better["val_ndcg10"] == pytest.approx(0.30)
    assert better["metrics"]["validation"]["ndcg@10"] == {"value": 0.30, "low": 0.29, "high": 0.31}
    assert better["lineage"]["data_hash"] == governed.snapshot.data_hash()
    assert better["lineage"]["ingest_runs"] == governed.snapshot.ingest_runs
    assert better["has_embeddings"] and better["params"]["epochs"] == 2
    one = governed.shop.get(f"/v1/admin/models/{governed.versions['better']}")
    assert one.status_code == 200 and one.json() == better


def test_an_unknown_version_is_a_404_naming_it(governed: Governed) -> None:
    for answer in (
        governed.shop.get("/v1/admin/models/no-such-version"),
        governed.shop.post("/v1/admin/models/no-such-version/activate", {}),
    ):
        assert answer.status_code == 404, answer.text
        assert (
            answer.json()["error"] == "not_found" and "no-such-version" in answer.json()["detail"]
        )


def test_the_gate_refuses_a_worse_version_with_the_metrics_compared(governed: Governed) -> None:
    shop, versions = governed.shop, governed.versions
    refused = shop.post(f"/v1/admin/models/{versions['worse']}/activate", {})
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "conflict" and "does not beat" in body["detail"]
    assert body["gate"] == {
        "metric": "ndcg@10",
        "candidate": versions["worse"],
        "candidate_value": pytest.approx(0.10),
        "active": versions["first"],
        "active_value": pytest.approx(0.20),
        "margin": 0.05,
        "required": pytest.approx(0.21),
    }
    # A margin override is applied: 0.30 does not beat 0.20 by 60%.
    high = shop.post(f"/v1/admin/models/{versions['better']}/activate", {"margin": 0.6})
    assert high.status_code == 409 and high.json()["gate"]["required"] == pytest.approx(0.32)
    # Forcing needs a reason: 422 naming it.
    unexplained = shop.post(f"/v1/admin/models/{versions['worse']}/activate", {"force": True})
    assert unexplained.status_code == 422, unexplained.text
    assert "reason" in unexplained.json()["detail"]
    already = shop.post(f"/v1/admin/models/{versions['first']}/activate", {})
    assert already.status_code == 409 and "already the active" in already.json()["detail"]
    assert active(shop) == versions["first"]


# -- activation and rollback under load --------------------------------------------------------
class Load:
    """Threads asking for one buyer's list until stopped; every answer's status and model."""

    def __init__(self, shop: Shop, customer: str, threads: int = 4) -> None:
        self.url = f"{shop.base}/v1/customers/{customer}/recommendations"
        self.headers = {"Authorization": f"Bearer {shop.keys['storefront']}"}
        self.answers: list[tuple[float, float, int, str | None]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(headers=self.headers, timeout=60) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    answer = client.get(self.url, params={"k": 10, "paths": 1})
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(repr(exc))
                    continue
                version = answer.json().get("model_version") if answer.is_success else None
                with self._lock:
                    self.answers.append((began, time.monotonic(), answer.status_code, version))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def wait_for(self, more: int) -> None:
        target = self.count() + more
        deadline = time.monotonic() + 60
        while self.count() < target:
            assert time.monotonic() < deadline, "the load got no answers"
            time.sleep(0.05)


def test_activate_and_roll_back_under_load_fail_no_request(governed: Governed) -> None:
    shop, versions = governed.shop, governed.versions
    with Load(shop, a_buyer(shop)) as load:
        load.wait_for(20)
        activated = shop.post(
            f"/v1/admin/models/{versions['better']}/activate", {"reason": "better offline"}
        )
        activated_at = time.monotonic()
        assert activated.status_code == 200, activated.text
        load.wait_for(20)
        rolling_at = time.monotonic()
        rolled = shop.post("/v1/admin/models/rollback", {"reason": "test rollback"})
        rolled_at = time.monotonic()
        assert rolled.status_code == 200, rolled.text
        load.wait_for(20)

    assert not load.errors, load.errors[:3]
    failed = [a for a in load.answers if not 200 <= a[2] < 300]
    assert not failed, failed[:5]
    # This process swapped its snapshot before answering: every list asked for after the
    # activation answered (and before the rollback was asked for) serves the new version, and
    # after the rollback answered the first again.
    between = [v for began, _, _, v in load.answers if activated_at < began < rolling_at]
    after = [v for began, _, _, v in load.answers if began > rolled_at]
    assert between and set(between) == {versions["better"]}
    assert after and set(after) == {versions["first"]}
    assert load.answers[0][3] == versions["first"]  # and the load began on the first

    body = activated.json()
    admin = key_id(shop, "admin")
    assert body["action"] == "activate" and body["previous"] == versions["first"]
    assert body["serving"] == versions["better"] and body["gate"] == "passed"
    assert body["nodes_written"] > 0 and admin in body["actor"]
    assert rolled.json()["serving"] == versions["first"] == active(shop)

    trail = shop.get("/v1/admin/models/audit", limit=2)
    assert trail.status_code == 200, trail.text
    rollback_event, activate_event = trail.json()
    assert rollback_event["action"] == "rollback" and activate_event["action"] == "activate"
    for event in (rollback_event, activate_event):
        assert admin in event["actor"] and "cli:" not in event["actor"]
    assert (activate_event["before"], activate_event["after"]) == (
        versions["first"],
        versions["better"],
    )
    assert activate_event["reason"] == "better offline"
    assert (rollback_event["before"], rollback_event["after"]) == (
        versions["better"],
        versions["first"],
    )
    assert rollback_event["reason"] == "test rollback"
    # The graph holds the same events.
    stored = shop.query(
        "MATCH (e:AuditEvent {subject_type: 'ModelVersion'}) WHERE e.actor CONTAINS $key "
        "RETURN e.action AS action ORDER BY e.ts",
        key=admin,
    )
    assert [r["action"] for r in stored] == ["activate", "rollback"]


def test_forced_activation_is_audited_with_its_reason(governed: Governed) -> None:
    shop, versions = governed.shop, governed.versions
    forced = shop.post(
        f"/v1/admin/models/{versions['worse']}/activate",
        {"force": True, "reason": "incident 42"},
    )
    assert forced.status_code == 200, forced.text
    assert forced.json()["forced"] and "does not beat" in forced.json()["gate"]
    assert forced.json()["serving"] == versions["worse"]
    back = shop.post("/v1/admin/models/rollback", {})
    assert back.status_code == 200 and back.json()["serving"] == versions["first"]
    event = shop.get("/v1/admin/models/audit", limit=2).json()[1]
    assert event["forced"] is True and event["reason"] == "incident 42"
    # The first version was the first active: nothing to roll back to.
    nothing = shop.post("/v1/admin/models/rollback", {})
    assert nothing.status_code == 409 and "nothing to roll back" in nothing.json()["detail"]


def test_another_api_process_follows_through_its_snapshot_fingerprint(
    governed: Governed, settings: Settings, tmp_path: Path
) -> None:
    """A second process (another worker or host) is not told: it sees the active version change
    in its fingerprint at its next check (KGREC_SNAPSHOT_REFRESH_S, 1 s here)."""
    shop, versions = governed.shop, governed.versions
    env = session_server_env(settings)
    env["KGREC_EVENTS_DIR"] = str(tmp_path / "events")
    env["KGREC_SERVED_SAMPLE_RATE"] = "0"
    env["KGREC_SNAPSHOT_REFRESH_S"] = "1"
    with api_server(env) as other:

        def serving() -> str | None:
            ready = httpx.get(f"{other}/readyz", timeout=30).json()
            return ready.get("model_version") if ready.get("status") == "ready" else None

        def wait_for(version: str) -> None:
            deadline = time.monotonic() + 60
            while (found := serving()) != version:
                assert time.monotonic() < deadline, f"still serving {found}, not {version}"
                time.sleep(0.2)

        wait_for(versions["first"])
        activated = shop.post(f"/v1/admin/models/{versions['better']}/activate", {})
        assert activated.status_code == 200, activated.text
        wait_for(versions["better"])
        assert shop.post("/v1/admin/models/rollback", {}).status_code == 200
        wait_for(versions["first"])


# -- drift -------------------------------------------------------------------------------------
def signal(body: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in body["signals"] if s["signal"] == name]
    assert found, body
    one: dict[str, Any] = found[0]
    return one


def test_drift_of_the_unchanged_shop_is_ok(governed: Governed) -> None:
    shop = governed.shop
    buyers = [
        r["id"]
        for r in shop.query(
            "MATCH (c:Customer)-[:PURCHASED]->() RETURN DISTINCT c.customer_id AS id ORDER BY id"
        )
    ]
    for customer in buyers:
        served = shop.get(
            f"/v1/customers/{customer}/recommendations", role="storefront", surface="email", paths=0
        )
        assert served.status_code == 200, served.text
    for _ in range(15):  # one customer, over and over, on the home page
        assert shop.get(f"/v1/customers/{buyers[0]}/recommendations", role="storefront").is_success
    answer = shop.get("/v1/monitoring/drift", fresh="true")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_version"] == governed.versions["first"]
    mix = signal(body, "interaction_mix")
    assert mix["status"] == "ok" and mix["psi"] < 0.1, mix
    assert mix["warn"] == 0.1 and mix["alert"] == 0.25
    assert mix["observations"] >= 100
    assert abs(sum(b["expected"] for b in mix["bins"]) - 1) < 1e-3
    assert abs(sum(b["actual"] for b in mix["bins"]) - 1) < 1e-3
    # Every buyer served once: the same population as the training reference, same model.
    scores = signal(body, "score_distribution:email")
    assert scores["observations"] >= 100 and scores["status"] == "ok", scores
    assert len(scores["bins"]) >= 2
    # A population of one customer is drift.
    assert signal(body, "score_distribution:home")["status"] == "alert"
    metrics = shop.get("/metrics").text
    assert 'kgrec_drift_psi{signal="interaction_mix"}' in metrics
    assert 'kgrec_drift_status{signal="interaction_mix"} 0.0' in metrics


def test_a_mix_shifted_into_one_category_is_an_alert(governed: Governed) -> None:
    shop = governed.shop
    # A week of orders after the newest, all in one top-level category: three times the lines
    # the whole window held before.
    before = signal(shop.get("/v1/monitoring/drift", fresh="true").json(), "interaction_mix")
    smallest = min(before["bins"], key=lambda b: b["expected"] if b["expected"] > 0 else 1)
    category = smallest["bin"]
    shop.query(
        """
        MATCH (o:Order) WITH max(o.ts) AS newest
        MATCH (p:Product)-[:IN_CATEGORY]->(:Category)-[:SUBCATEGORY_OF*0..]->(top:Category)
        WHERE top.category_id = $top
        WITH newest, collect(DISTINCT p) AS products
        MATCH (c:Customer) WITH newest, products, collect(c) AS customers
        UNWIND range(0, $lines - 1) AS i
        WITH newest, products[i % size(products)] AS p, customers[i % size(customers)] AS c, i
        CREATE (c)-[:PLACED]->(o:Order {order_id: 'drift-' + toString(i),
                                        ts: newest + duration({hours: 1 + i % 100})})
        CREATE (o)-[:CONTAINS {quantity: 1}]->(p)
        """,
        top=category,
        lines=3 * before["observations"],
    )
    answer = shop.get("/v1/monitoring/drift", fresh="true")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    mix = signal(body, "interaction_mix")
    assert mix["status"] == "alert" and mix["psi"] >= 0.25, mix
    assert body["status"] == "alert"
    shifted = next(b for b in mix["bins"] if b["bin"] == category)
    assert shifted["actual"] > 0.7 > shifted["expected"]
    metrics = shop.get("/metrics").text
    assert 'kgrec_drift_status{signal="interaction_mix"} 2.0' in metrics
