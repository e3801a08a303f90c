"""A/B experiments on a real HTTP server over a real graph: two registered kg-gnn versions, a
small synthetic shop. Create (validation, one running experiment per surface), lists served by
the customer's variant (stable, at the split, tagged in the body and in the graph, recorded at
100% while the sample rate is 0), events counted by the report, stop and promote audited (the
model winner activated, a ranking winner applied by the API from the graph)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import neo4j
import pytest

from graph.settings import Settings
from graph.synthetic import ShopSpec
from recommender.experiments import Variant, assign
from tests.api.served import Shop, served_shop
from tests.api.test_cli import environment

pytestmark = pytest.mark.integration

SHOP = ShopSpec(customers=120, products=60, days=60, seed=23, lines_per_customer=8)


class Lab(Shop):
    versions: tuple[str, str]
    env: dict[str, str]
    experiment: dict[str, Any]

    def customers(self) -> list[str]:
        rows = self.query("MATCH (c:Customer) RETURN c.customer_id AS id ORDER BY id")
        return [str(r["id"]) for r in rows]


@pytest.fixture(scope="module")
def lab(
    neo4j_driver: neo4j.Driver, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    env = {
        "KGREC_EVENTS_DIR": str(tmp_path_factory.mktemp("events")),
        # No sampled write-back at all: experiment traffic must be written anyway.
        "KGREC_SERVED_SAMPLE_RATE": "0",
        "KGREC_SNAPSHOT_REFRESH_S": "1",  # changes made by the CLI reach the API quickly
    }
    with served_shop(
        neo4j_driver, settings, tmp_path_factory, SHOP, seeds=(1, 2), env=env
    ) as served:
        lab = Lab(served.shop.base, served.shop.keys, neo4j_driver, settings.neo4j.database)
        lab.versions = (served.versions[0], served.versions[1])
        lab.env = served.env
        yield lab


def cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "experiments", *args],
        env=environment(lab.env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def wait_for(check: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def home(lab: Lab, customer: str, surface: str = "home") -> dict[str, Any]:
    answer = lab.get(
        f"/v1/customers/{customer}/recommendations", "storefront", paths=0, surface=surface
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_create_checks_input_and_one_experiment_per_surface(lab: Lab) -> None:
    new = lab.versions[1]
    spec: dict[str, Any] = {
        "name": "retrained model",
        "surfaces": ["home"],
        "variants": [
            {"name": "control", "weight": 0.5},
            {"name": "retrained", "weight": 0.5, "model_version": new},
        ],
        "note": "does the retrain sell more?",
    }
    assert lab.post("/v1/experiments", spec, "merchandiser").status_code == 403
    assert lab.post("/v1/experiments", spec, None).status_code == 401
    unknown = {
        **spec,
        "variants": [spec["variants"][0], {**spec["variants"][1], "model_version": "nope"}],
    }
    answer = lab.post("/v1/experiments", unknown)
    assert answer.status_code == 422, answer.text
    assert answer.json()["fields"][0]["location"] == "body.variants.1.model_version"
    assert "no model version 'nope'" in answer.json()["detail"]
    uneven = {**spec, "variants": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.6}]}
    answer = lab.post("/v1/experiments", uneven)
    assert answer.status_code == 422 and "sum to 1" in answer.text
    assert lab.get("/v1/experiments").json() == []  # nothing was created by the refusals

    created = lab.post("/v1/experiments", spec)
    assert created.status_code == 201, created.text
    lab.experiment = created.json()
    assert lab.experiment["status"] == "running" and lab.experiment["control"] == "control"
    clash = lab.post("/v1/experiments", {**spec, "surfaces": ["email", "home"]})
    assert clash.status_code == 409, clash.text
    assert lab.experiment["experiment_id"] in clash.json()["detail"]
    assert "home" in clash.json()["detail"]


def test_lists_follow_a_stable_assignment_and_are_recorded(lab: Lab) -> None:
    experiment = lab.experiment
    eid = experiment["experiment_id"]
    old, new = lab.versions
    variants = [
        Variant(v["name"], v["weight"], v["model_version"], {}) for v in experiment["variants"]
    ]
    seen: dict[str, str] = {}
    for customer in lab.customers():
        body = home(lab, customer)
        expected = assign(eid, customer, variants).name
        assert body["experiment"] == {"id": eid, "variant": expected}
        assert body["model_version"] == (new if expected == "retrained" else old)
        assert body["list_id"]
        seen[customer] = expected
    for customer in list(seen)[:20]:  # asked again: the same variant
        assert home(lab, customer)["experiment"]["variant"] == seen[customer]
    # Visitors the shop does not know yet are assigned too, at the 50/50 split.
    visitors = Counter(home(lab, f"visitor-{i}")["experiment"]["variant"] for i in range(600))
    assert 240 <= visitors["control"] <= 360, visitors  # 5 standard deviations around 300
    # Other surfaces are not part of it.
    assert home(lab, next(iter(seen)), surface="email")["experiment"] is None
    product = lab.query("MATCH (p:Product) RETURN p.product_id AS id LIMIT 1")[0]["id"]
    similar = lab.get(f"/v1/products/{product}/similar", "storefront", paths=0).json()
    assert similar["experiment"] is None

    # Every experiment list is in the graph (sample rate 0), with variant and model version.
    def recorded() -> list[dict[str, Any]]:
        rows = lab.query(
            "MATCH (c:Customer)-[w:WAS_RECOMMENDED {experiment_id: $id}]->() "
            "RETURN c.customer_id AS customer, collect(DISTINCT w.variant) AS variants, "
            "collect(DISTINCT w.model_version) AS versions, count(DISTINCT w.list_id) AS lists",
            id=eid,
        )
        return rows if len(rows) == len(seen) else []

    rows = wait_for(recorded, "the served lists to be written back")
    for row in rows:
        variant = seen[row["customer"]]
        assert row["variants"] == [variant]
        assert row["versions"] == [new if variant == "retrained" else old]
        assert row["lists"] >= 1
    assert (
        lab.query("MATCH ()-[w:WAS_RECOMMENDED]->() WHERE w.experiment_id IS NULL RETURN w") == []
    )


def test_report_counts_clicks_carts_and_purchases(lab: Lab) -> None:
    eid = lab.experiment["experiment_id"]
    variants = [
        Variant(v["name"], v["weight"], v["model_version"], {}) for v in lab.experiment["variants"]
    ]
    by_variant: dict[str, list[str]] = {"control": [], "retrained": []}
    for customer in lab.customers():
        by_variant[assign(eid, customer, variants).name].append(customer)
    treated, control = by_variant["retrained"][:6], by_variant["control"][:6]
    events: list[dict[str, Any]] = []

    def shown(customer: str) -> list[str]:
        rows = lab.query(
            "MATCH (:Customer {customer_id: $c})-[w:WAS_RECOMMENDED {experiment_id: $id}]->(p) "
            "RETURN DISTINCT p.product_id AS id ORDER BY id",
            c=customer,
            id=eid,
        )
        return [r["id"] for r in rows]

    for customer in treated[:5]:  # five treated customers click a recommended item
        events.append({"kind": "click", "customer_id": customer, "product_id": shown(customer)[0]})
    for customer in control[:2]:
        events.append({"kind": "click", "customer_id": customer, "product_id": shown(customer)[0]})
    # A click on something never recommended to them is not a click on a recommendation.
    products = [r["id"] for r in lab.query("MATCH (p:Product) RETURN p.product_id AS id")]
    elsewhere = next(p for p in products if p not in shown(control[2]))
    events.append({"kind": "click", "customer_id": control[2], "product_id": elsewhere})
    for customer in treated[:3]:
        events.append({"kind": "add_to_cart", "customer_id": customer, "product_id": products[0]})
    for customer in treated[:4]:
        events.append(
            {
                "kind": "purchase",
                "customer_id": customer,
                "product_id": products[1],
                "quantity": 2,
                "unit_price": 10.0,
            }
        )
    events.append(
        {
            "kind": "purchase",
            "customer_id": control[0],
            "product_id": products[2],
            "unit_price": 5.0,
        }
    )
    assert lab.post("/v1/events", events, "storefront").status_code == 202

    def report() -> dict[str, Any]:
        body: dict[str, Any] = lab.get(f"/v1/experiments/{eid}/report").json()
        got = {v["name"]: v for v in body["variants"]}
        done = got["retrained"]["clicks"] == 5 and got["control"]["clicks"] == 2
        done = done and got["control"]["metrics"]["conversion"]["value"] > 0
        return body if done else {}

    body = wait_for(report, "the events to reach the report")
    got = {v["name"]: v for v in body["variants"]}
    n_treated, n_control = len(by_variant["retrained"]), len(by_variant["control"])
    assert got["retrained"]["customers"] == n_treated
    assert got["control"]["customers"] == n_control
    treated_metrics = got["retrained"]["metrics"]
    assert treated_metrics["click_through"]["value"] == pytest.approx(5 / n_treated)
    assert treated_metrics["add_to_cart"]["value"] == pytest.approx(3 / n_treated)
    assert treated_metrics["conversion"]["value"] == pytest.approx(4 / n_treated)
    assert treated_metrics["revenue_per_customer"]["value"] == pytest.approx(80 / n_treated)
    assert got["control"]["metrics"]["click_through"]["value"] == pytest.approx(2 / n_control)
    assert got["control"]["metrics"]["revenue_per_customer"]["value"] == pytest.approx(
        5 / n_control
    )
    versus = got["retrained"]["vs_control"]["conversion"]
    assert versus["difference"] == pytest.approx(4 / n_treated - 1 / n_control)
    assert versus["ci_low"] < versus["difference"] < versus["ci_high"]
    assert 0 < versus["p_value"] <= 1
    assert got["control"]["vs_control"] == {}
    assert got["retrained"]["lists"] >= n_treated
    # The CLI prints the same report as a table.
    printed = cli(lab, "report", eid)
    assert printed.returncode == 0, printed.stderr
    for text in ("retrained", "control", "click_through", "revenue_per_customer"):
        assert text in printed.stdout


def test_stop_and_promote_are_audited(lab: Lab) -> None:
    eid = lab.experiment["experiment_id"]
    old, new = lab.versions
    stopped = lab.post(f"/v1/experiments/{eid}/stop", {"reason": "enough data"})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "stopped"
    customer = lab.customers()[0]
    assert home(lab, customer)["experiment"] is None  # everyone gets the control again
    assert lab.post(f"/v1/experiments/{eid}/stop", {}).status_code == 409
    bad = lab.post(f"/v1/experiments/{eid}/promote", {"variant": "nope"})
    assert bad.status_code == 422 and "has no variant 'nope'" in bad.text

    promoted = lab.post(f"/v1/experiments/{eid}/promote", {"variant": "retrained", "reason": "won"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["activated_model"] == new
    assert promoted.json()["experiment"]["promoted_variant"] == "retrained"
    assert lab.query("MATCH (v:ModelVersion {active: true}) RETURN v.version_id AS v") == [
        {"v": new}
    ]
    assert lab.post(f"/v1/experiments/{eid}/promote", {"variant": "control"}).status_code == 409
    wait_for(lambda: home(lab, customer)["model_version"] == new, "the new model to serve")

    audit = lab.get(f"/v1/experiments/{eid}").json()["audit"]
    assert [a["action"] for a in audit] == ["create", "stop", "promote"]
    assert all(a["actor"].startswith("key:") and "admin" in a["actor"] for a in audit)
    assert audit[1]["reason"] == "enough data" and audit[2]["after"].startswith("variant retrained")
    activation = lab.query(
        "MATCH (e:AuditEvent {subject_type: 'ModelVersion', subject_id: $v}) "
        "RETURN e.reason AS reason, e.before AS before ORDER BY e.ts DESC LIMIT 1",
        v=new,
    )
    assert eid in activation[0]["reason"] and activation[0]["before"] == old


def test_a_ranking_winner_is_applied_by_the_api(lab: Lab) -> None:
    # Made with the CLI this time: the API picks it up at its next refresh.
    uneven = cli(
        lab, "create", "x", "--surface", "email", "--variant", "a=0.5", "--variant", "b=0.6"
    )
    assert uneven.returncode == 1 and "weights must sum to 1" in uneven.stderr
    made = cli(
        lab,
        "create",
        "one per category in e-mails",
        "--surface",
        "email",
        "--variant",
        "control=0.5",
        "--variant",
        "spread=0.5",
        "--ranking",
        'spread={"max_per_category": 1}',
    )
    assert made.returncode == 0, made.stderr
    eid = next(
        e["experiment_id"] for e in lab.get("/v1/experiments").json() if e["status"] == "running"
    )
    customers = lab.customers()[:40]
    wait_for(
        lambda: home(lab, customers[0], surface="email")["experiment"] is not None,
        "the API to serve the experiment made by the CLI",
    )

    def most_per_category(body: dict[str, Any]) -> int:
        counts = Counter(i["category_id"] for i in body["items"])
        return max(counts.values())

    lists = {c: home(lab, c, surface="email") for c in customers}
    spread = [b for b in lists.values() if b["experiment"]["variant"] == "spread"]
    control = [b for b in lists.values() if b["experiment"]["variant"] == "control"]
    assert spread and control
    assert all(most_per_category(b) == 1 for b in spread)
    assert any(most_per_category(b) > 1 for b in control)  # else the test would prove nothing

    done = cli(lab, "promote", eid, "spread", "--reason", "cleaner e-mails")
    assert done.returncode == 0, done.stderr
    assert "max_per_category" in done.stdout
    shown = cli(lab, "show", eid)
    assert "promote" in shown.stdout and "cli:" in shown.stdout

    # The API reads the promoted weights from the graph: every customer gets them now.
    def applied() -> bool:
        answers = [home(lab, c, surface="email") for c in customers]
        return all(a["experiment"] is None and most_per_category(a) == 1 for a in answers)

    wait_for(applied, "the promoted ranking to reach the API")


def test_the_api_loads_statsmodels_only_for_a_report() -> None:
    # About 50 MiB per API worker; the serving path never needs it.
    code = "import sys, api.app; sys.exit('statsmodels' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
