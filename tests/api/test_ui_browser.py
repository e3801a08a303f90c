"""The merchandiser page (`/ui`) in a real headless chromium over the real API and graph: sign
in, search, recommendations, an explanation graph checked against the API's paths, why-not, a
rule that changes the ranking, the product page's forecast chart and the model versions. The
routes the page adds (search, product detail, models) are checked against the graph first."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.routes_ui import UI_DIST
from forecasting.service import forecast_row, write_forecasts
from tests.api.served import Shop
from tests.api.test_serving_api import a_buyer, product, shop
from tests.conftest import require_tool

pytestmark = pytest.mark.integration

__all__ = ["shop"]  # the module-scoped fixture, shared with the serving API tests

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
DOCS = ROOT / "docs"
MEAN = [3.0, 4.0, 5.0, 4.5, 3.5, 6.0, 5.5]


def screenshot(page: Any, name: str) -> None:
    """Keeps a screenshot under tests/artifacts; docs/ui-NAME.png is written when missing or
    when KGREC_UPDATE_SCREENSHOTS is set (so a test run leaves the tracked files alone)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"ui-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    doc = DOCS / f"ui-{name}.png"
    if os.environ.get("KGREC_UPDATE_SCREENSHOTS") or not doc.exists():
        shutil.copyfile(path, doc)


@pytest.fixture(scope="module")
def forecasted(shop: Shop) -> str:
    """A product with a current forecast written through the forecasting code (known values)."""
    product_id = product(shop)
    stocked = shop.query(
        "MATCH (:Product {product_id: $p})-[s:STOCKED_AT]->(l:Location) "
        "RETURN l.location_id AS id, s.on_hand AS on_hand, s.lead_time_days AS lead "
        "ORDER BY id LIMIT 1",
        p=product_id,
    )
    location = stocked[0]["id"] if stocked else "ALL"
    mean = np.array(MEAN)
    row = forecast_row(
        version="ui-test",
        created=datetime.now(UTC),
        product_id=product_id,
        location_id=location,
        model="test",
        first_day=date.today(),
        mean=mean,
        lower=mean - 1,
        upper=mean + 2,
        days_per_step=1,
        stock=(stocked[0]["on_hand"], stocked[0]["lead"]) if stocked else (None, None),
    )
    write_forecasts(shop.driver, shop.db, "ui-test", [row])
    return product_id


def split(ndcg: float, recall: float) -> dict[str, Any]:
    """One split of a registry `metrics` document, as gnn.evaluate writes it."""
    metrics = {"ndcg@10": ndcg, "recall@20": recall}
    return {
        "period": "x",
        "slices": {
            "all": {
                "users": 10,
                "metrics": {k: {"value": v, "low": v, "high": v} for k, v in metrics.items()},
            }
        },
    }


OLDER_METRICS = {"validation": split(0.21, 0.4), "test": split(0.19, 0.35)}


@pytest.fixture(scope="module")
def older_version(shop: Shop) -> str:
    """An older, inactive version in the registry's node format, with evaluation metrics."""
    shop.query(
        "CREATE (:ModelVersion {version_id: 'ui-test-older', model: 'popularity', "
        "created_at: datetime() - duration('P1D'), active: false, metrics: $metrics, "
        "val_ndcg10: 0.21, test_ndcg10: 0.19, artifacts: '/nonexistent', has_embeddings: false})",
        metrics=json.dumps(OLDER_METRICS),
    )
    return "ui-test-older"


# -- the routes the page adds ------------------------------------------------------------------
def test_search_finds_customers_and_products(shop: Shop) -> None:
    customer = a_buyer(shop)
    found = shop.get("/v1/search", "merchandiser", q=customer[:-1], limit=50).json()
    assert customer in [h["id"] for h in found["customers"]]
    assert all(h["id"].startswith(customer[:-1]) for h in found["customers"])
    name = shop.query("MATCH (p:Product {product_id: $p}) RETURN p.name AS n", p=product(shop))[0][
        "n"
    ]
    word = max(name.split(), key=len)
    by_name = shop.get("/v1/search", "merchandiser", q=word.upper(), limit=50).json()["products"]
    assert product(shop) in [h["id"] for h in by_name] or len(by_name) == 50
    assert all(word.lower() in h["detail"].lower() for h in by_name)
    assert shop.get("/v1/search", "merchandiser", q="", limit=5).status_code == 422
    bad = shop.get("/v1/search", "merchandiser", q="C", limit=0)
    assert bad.status_code == 422 and "limit" in bad.text
    assert shop.get("/v1/search", "storefront", q="C").status_code == 403
    assert shop.get("/v1/search", None, q="C").status_code == 401


def test_product_detail_has_stock_forecast_and_promotions(shop: Shop, forecasted: str) -> None:
    detail = shop.get(f"/v1/products/{forecasted}", "merchandiser")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    stock = shop.query(
        "MATCH (:Product {product_id: $p})-[s:STOCKED_AT]->(l) "
        "RETURN l.location_id AS id, s.on_hand AS on_hand ORDER BY id",
        p=forecasted,
    )
    assert [(s["location_id"], s["on_hand"]) for s in body["stock"]] == [
        (s["id"], s["on_hand"]) for s in stock
    ]
    [forecast] = [f for f in body["forecasts"] if f["model_version"] == "ui-test"]
    assert forecast["mean"] == MEAN
    assert forecast["lower"] == [m - 1 for m in MEAN]
    assert forecast["upper"] == [m + 2 for m in MEAN]
    assert forecast["level"] is not None and forecast["first_day"] == date.today().isoformat()
    if stock:
        here = next(s for s in body["stock"] if s["location_id"] == forecast["location_id"])
        assert here["days_of_cover"] is not None and here["days_of_cover"] > 0
    assert isinstance(body["promotions"], list)
    missing = shop.get("/v1/products/NOPE-1", "merchandiser")
    assert missing.status_code == 404 and "NOPE-1" in missing.json()["detail"]


def test_models_lists_versions_and_the_active_one(shop: Shop, older_version: str) -> None:
    body = shop.get("/v1/models", "merchandiser").json()
    active = shop.query("MATCH (v:ModelVersion {active: true}) RETURN v.version_id AS id")
    assert body["active"] == active[0]["id"] == body["serving"]
    assert [v["version_id"] for v in body["versions"]] == [body["active"], older_version]
    assert [v["active"] for v in body["versions"]] == [True, False]
    older = body["versions"][1]
    assert older["metrics"] == {
        "validation": {"ndcg@10": 0.21, "recall@20": 0.4},
        "test": {"ndcg@10": 0.19, "recall@20": 0.35},
    }
    assert (older["val_ndcg10"], older["test_ndcg10"]) == (0.21, 0.19)
    assert shop.get("/v1/models", "storefront").status_code == 403


# -- the page in chromium ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = require_tool("chromium")
    if not (UI_DIST / "index.html").is_file():
        pytest.fail(f"{UI_DIST} is not built: run `make ui`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()


def rows(page: Any) -> list[str]:
    found: list[str] = page.locator("#recs-table tr.rec").evaluate_all(
        "rows => rows.map(r => r.dataset.product)"
    )
    return found


def test_merchandiser_page_end_to_end(
    shop: Shop, forecasted: str, older_version: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    customer = a_buyer(shop)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "request",
        lambda r: (
            errors.append(f"remote request {r.url}") if not r.url.startswith(shop.base) else None
        ),
    )
    page.goto(f"{shop.base}/ui")

    # Sign in: a storefront key is turned away with the reason, a merchandiser key gets in.
    expect(page.locator("#signin")).to_be_visible()
    page.fill("#key-input", shop.keys["storefront"])
    page.click("#signin-btn")
    expect(page.locator("#signin-error")).to_contain_text("merchandiser key")
    screenshot(page, "signin")
    page.fill("#key-input", shop.keys["merchandiser"])
    page.click("#signin-btn")
    expect(page.locator("#nav")).to_be_visible()

    # Search the customer and open them.
    page.fill("#search-input", customer)
    page.click("#search-btn")
    hit = page.locator("a.hit-customer", has_text=customer)
    expect(hit).to_be_visible()
    screenshot(page, "search")
    hit.click()
    expect(page.locator("#customer-id")).to_have_text(customer)
    page.wait_for_selector("#recs-table tr.rec")
    api = shop.get(
        f"/v1/customers/{customer}/recommendations", "merchandiser", surface="home", k=10, paths=3
    ).json()
    assert rows(page) == [i["product_id"] for i in api["items"]]
    strategies = page.locator("#recs-table .strategy").all_inner_texts()
    assert strategies == [i["strategy"] for i in api["items"]]

    # Open an explanation: the drawn graph has exactly the nodes of the API's paths.
    explained = next(i for i in api["items"] if i["paths"])
    page.locator(f'tr.rec[data-product="{explained["product_id"]}"] .explain-btn').click()
    expect(page.locator("#explain-title")).to_contain_text(explained["product_id"])
    drawn = page.evaluate("() => window.kgrecGraph.nodes().map(n => n.id())")
    expected = {f"{n['label']}:{n['id']}" for p in explained["paths"] for n in p["nodes"]}
    assert set(drawn) == expected and len(drawn) == len(expected)
    edges = page.evaluate("() => window.kgrecGraph.edges().length")
    assert edges == sum(len(p["relationships"]) for p in explained["paths"])
    assert page.locator("#paths li").count() == len(explained["paths"])
    screenshot(page, "customer")

    # Why not: a product the list does not show, answered as the API answers it.
    shown = set(rows(page))
    other = shop.query(
        "MATCH (p:Product) WHERE NOT p.product_id IN $shown "
        "RETURN p.product_id AS id ORDER BY id LIMIT 1",
        shown=sorted(shown),
    )[0]["id"]
    page.fill("#whynot-input", other)
    page.click("#whynot-btn")
    answer = page.locator("#whynot-answer")
    expect(answer).to_contain_text("Not shown")
    why = shop.get(f"/v1/customers/{customer}/why-not/{other}", "merchandiser").json()
    assert not why["shown"]
    if why["removed_by"]:
        expect(answer).to_contain_text("; ".join(why["removed_by"]))
    else:
        expect(answer).to_contain_text(f"ranked {why['rank']}")

    # Exclude the top product: it leaves the list at once, in the page and in serving.
    top = rows(page)[0]
    page.locator(f'tr.rec[data-product="{top}"] .exclude-btn').click()
    expect(page.locator("#recs-table tr.rec").first).not_to_have_attribute("data-product", top)
    assert top not in rows(page)
    served = shop.get(f"/v1/customers/{customer}/recommendations", "storefront", paths=0).json()
    assert top not in [i["product_id"] for i in served["items"]]
    rules = shop.get("/v1/rules", "merchandiser").json()
    assert [(r["action"], r["target_id"], r["surface"]) for r in rules] == [
        ("exclude", top, "home")
    ]

    # The rules editor: pin the fifth item to the top; the customer's list follows.
    fifth = rows(page)[4]
    page.click("#nav-rules")
    form = page.locator("#rule-form")
    form.locator("select[name=action]").select_option("pin")
    form.locator("input[name=target_id]").fill(fifth)
    form.locator("select[name=surface]").select_option("home")
    form.locator("input[name=position]").fill("1")
    form.locator("input[name=note]").fill("browser test")
    page.click("#rule-add")
    expect(page.locator("#rule-message")).to_contain_text("Added")
    expect(page.locator("#rules-table tbody tr")).to_have_count(2)
    screenshot(page, "rules")
    audited = shop.query(
        "MATCH (e:AuditEvent {subject_type: 'MerchandisingRule', action: 'create'}) "
        "RETURN e.actor AS actor"
    )
    assert len(audited) == 2 and all("merchandiser" in a["actor"] for a in audited)
    page.goto(f"{shop.base}/ui/#/customer/{customer}")
    page.wait_for_selector("#recs-table tr.rec")
    assert rows(page)[0] == fifth and top not in rows(page)

    # Product page: stock, the forecast chart with its interval, similar and bought together.
    page.goto(f"{shop.base}/ui/#/product/{forecasted}")
    expect(page.locator("#product-id")).to_have_text(forecasted)
    page.wait_for_selector("#forecast")
    datasets = page.evaluate("() => window.kgrecChart.data.datasets.map(d => d.data)")
    assert datasets == [[m + 2 for m in MEAN], [m - 1 for m in MEAN], MEAN]
    assert page.locator("#similar li").count() > 0
    screenshot(page, "product")

    # Model versions.
    page.click("#nav-models")
    active = shop.get("/v1/models", "merchandiser").json()["active"]
    expect(page.locator(f'#models-table tr[data-version="{active}"]')).to_contain_text("active")
    older = page.locator(f'#models-table tr[data-version="{older_version}"]')
    expect(older).to_contain_text("inactive")
    expect(older).to_contain_text("0.19")  # test NDCG@10
    expect(older).to_contain_text("0.35")  # test recall@20
    screenshot(page, "models")

    for rule in shop.get("/v1/rules", "merchandiser").json():
        shop.delete(f"/v1/rules/{rule['rule_id']}", "merchandiser")
    assert errors == []
