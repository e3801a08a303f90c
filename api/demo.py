"""The end of `kgrec demo`: one API key per role for the demo (kept in a private file under
KGREC_HOME, development only), and a working `curl` for each surface."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import neo4j

from graph.errors import KgrecError
from graph.keys import KeyStore, Role, parse_key

DEMO_KEYS_FILE = "demo-keys.json"


def demo_keys(driver: neo4j.Driver, database: str, home: Path) -> dict[str, str]:
    """The demo's keys, one per role: reused while still active, created otherwise. The file is
    readable by its owner only; it exists so the printed commands keep working across runs."""
    path = home / DEMO_KEYS_FILE
    store = KeyStore(driver, database=database)
    saved: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    keys: dict[str, str] = {}
    for role in Role:
        key = saved.get(role.value)
        parsed = parse_key(key) if key else None
        if parsed is not None:
            try:
                if store.get(parsed.key_id).active:
                    keys[role.value] = key  # type: ignore[assignment]
                    continue
            except KgrecError:
                pass
        keys[role.value] = store.create(role, f"demo {role.value}", reason="kgrec demo")[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(keys, out, indent=2)
    return keys


def demo_ids(driver: neo4j.Driver, database: str) -> dict[str, str]:
    """A customer with purchases, a popular product and a segment of the demo shop."""
    record = driver.execute_query(
        """
        MATCH (c:Customer)-[:PURCHASED]->()
        WHERE coalesce(c.personalization, true) AND c.segment IS NOT NULL
        WITH c, count(*) AS n ORDER BY n DESC, c.customer_id LIMIT 1
        MATCH (p:Product)<-[:PURCHASED]-(:Customer)
        WITH c, p, count(*) AS buyers ORDER BY buyers DESC, p.product_id LIMIT 2
        RETURN c.customer_id AS customer, c.segment AS segment, collect(p.product_id) AS products
        """,
        database_=database,
        routing_=neo4j.RoutingControl.READ,
    ).records[0]
    products = record["products"]
    return {
        "customer": record["customer"],
        "segment": record["segment"],
        "product": products[0],
        "other_product": products[-1],
    }


def curl_commands(base: str, keys: dict[str, str], ids: dict[str, str]) -> list[tuple[str, str]]:
    """(what, command) for each surface, runnable as printed."""

    def get(role: str, path: str) -> str:
        return f"curl -s -H 'Authorization: Bearer {keys[role]}' {shlex.quote(base + path)}"

    def send(role: str, method: str, path: str, body: object) -> str:
        return (
            f"curl -s -X {method} -H 'Authorization: Bearer {keys[role]}' "
            f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))} "
            f"{shlex.quote(base + path)}"
        )

    customer, product = ids["customer"], ids["product"]
    return [
        ("readiness (open)", f"curl -s {base}/readyz"),
        (
            "home page: a customer's top 5 with paths",
            get("storefront", f"/v1/customers/{customer}/recommendations?k=5&paths=2"),
        ),
        (
            "a brand-new customer (fallback chain)",
            get("storefront", "/v1/customers/new-visitor-1/recommendations?k=3&paths=0"),
        ),
        ("product page: similar", get("storefront", f"/v1/products/{product}/similar?k=5")),
        (
            "product page: bought together",
            get("storefront", f"/v1/products/{product}/bought-together?k=5"),
        ),
        (
            "cart cross-sell",
            send(
                "storefront",
                "POST",
                "/v1/cart/recommendations",
                {"product_ids": [product, ids["other_product"]], "customer_id": customer, "k": 5},
            ),
        ),
        (
            "storefront events (durable before the answer)",
            send(
                "storefront",
                "POST",
                "/v1/events",
                [{"kind": "view", "customer_id": customer, "product_id": product}],
            ),
        ),
        (
            "segment e-mail campaign (a background job; poll the job_id it returns)",
            send("storefront", "POST", "/v1/campaigns", {"segment": ids["segment"], "k": 5}),
        ),
        (
            "why not this product? (merchandiser)",
            get("merchandiser", f"/v1/customers/{customer}/why-not/{product}"),
        ),
        ("merchandising rules (merchandiser)", get("merchandiser", "/v1/rules")),
        ("Prometheus metrics (admin)", get("admin", "/metrics")),
    ]
