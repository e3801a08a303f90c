"""Probe (not the product's ingest path): how fast could Neo4j's offline importer load the
ingestion benchmark's shop into an empty store, files to a started, indexed database?

Issue 3's 50,000 order lines/s target is out of reach of transactional Cypher on this 2-core
machine (docs/benchmarks.md: 4,246 lines/s). This measures the alternative before building it:

1. read the shop's CSVs with pyarrow and shape them into the importer's CSV files, vectorised
   (Customer, Segment, Region, Product, Category, Brand, Order nodes; IN_SEGMENT, IN_REGION,
   IN_CATEGORY, HAS_BRAND, SUBCATEGORY_OF, PLACED, CONTAINS per order and product, PURCHASED
   per customer and product, one relationship per customer, product and event type with its
   times), the graph the transactional loader writes for these files, less attributes,
   suppliers, stock, promotions, sales and relations (30k rows: noise next to 2M);
2. `neo4j-admin database import full` (org.neo4j.cli.AdminTool, already on the local
   launcher's classpath) into a fresh store;
3. start that store with the project's launcher, apply the schema (constraints and indexes)
   and wait until every index is online; count what is there.

No validation is timed here (pydantic took 24 s for the 2M rows; a vectorised check is part
of what the bulk path would need). Run:

  .venv/bin/python -m bench.bulk_import_probe
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from graph.driver import open_driver
from graph.local import LocalNeo4j
from graph.schema import apply_schema
from graph.settings import Neo4jSettings

PASSWORD = "probe-password"
LIB = Path("neo4j-local/target/lib")
EVENT_TYPES = {
    "view": "VIEWED",
    "click": "CLICKED",
    "add_to_cart": "ADDED_TO_CART",
    "purchase": "PURCHASE_EVENT",
    "rating": "RATED",
}


def _read(path: Path) -> pa.Table:
    return pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            strings_can_be_null=True,
            column_types={"ts": pa.string(), "first_seen": pa.string(), "created_at": pa.string()},
        ),
    )


def _write(table: pa.Table, path: Path) -> int:
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="needed"))
    return int(table.num_rows)


def _iso(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """'2024-01-16 10:51:05Z' -> '2024-01-16T10:51:05Z' (the importer's datetime)."""
    return pc.replace_substring(column, " ", "T")


def _links(start: str, starts: pa.ChunkedArray, end: str, ends: pa.ChunkedArray, path: Path) -> int:
    """A relationship file from two parallel columns, rows without an end left out."""
    known = pc.is_valid(ends)
    table = {f":START_ID({start})": starts.filter(known), f":END_ID({end})": ends.filter(known)}
    return _write(pa.table(table), path)


def shape(shop: Path, out: Path) -> dict[str, int]:
    """The importer's CSV files from the shop's; rows per file."""
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    customers = _read(shop / "customers.csv")
    rows["customers"] = _write(
        pa.table(
            {
                "customer_id:ID(Customer)": customers["customer_id"],
                "segment": customers["segment"],
                "region": customers["region"],
                "first_seen:datetime": _iso(customers["first_seen"]),
                "personalization:boolean": pa.array([True] * customers.num_rows),
            }
        ),
        out / "customers.csv",
    )
    for name, column, label, rel in (
        ("segments", "segment", "Segment", "IN_SEGMENT"),
        ("regions", "region", "Region", "IN_REGION"),
    ):
        values = pc.unique(pc.drop_null(customers[column]))
        _write(pa.table({f"{column}_id:ID({label})": values, "name": values}), out / f"{name}.csv")
        rows[rel] = _links(
            "Customer",
            customers["customer_id"],
            label,
            customers[column],
            out / f"{rel.lower()}.csv",
        )
    categories = _read(shop / "categories.csv")
    _write(
        pa.table(
            {"category_id:ID(Category)": categories["category_id"], "name": categories["name"]}
        ),
        out / "categories.csv",
    )
    _links(
        "Category",
        categories["category_id"],
        "Category",
        categories["parent_id"],
        out / "subcategory_of.csv",
    )
    products = _read(shop / "products.csv")
    rows["products"] = _write(
        pa.table(
            {
                "product_id:ID(Product)": products["product_id"],
                "name": products["name"],
                "names:string[]": products["name"],
                "price:double": products["price"],
                "created_at:datetime": _iso(products["created_at"]),
                "active:boolean": pa.array([True] * products.num_rows),
            }
        ),
        out / "products.csv",
    )
    split = pc.split_pattern(products["category_ids"], ";")
    lengths = pc.list_value_length(split)
    _write(
        pa.table(
            {
                ":START_ID(Product)": pc.take(
                    products["product_id"], pc.list_parent_indices(split)
                ),
                ":END_ID(Category)": pc.list_flatten(split),
            }
        ),
        out / "in_category.csv",
    )
    rows["in_category"] = int(pc.sum(lengths).as_py())
    brands = pc.unique(pc.drop_null(products["brand"]))
    _write(pa.table({"brand_id:ID(Brand)": brands, "name": brands}), out / "brands.csv")
    _links("Product", products["product_id"], "Brand", products["brand"], out / "has_brand.csv")

    lines = _read(shop / "orders.csv")
    ts = _iso(lines["ts"])
    lines = lines.set_column(lines.schema.get_field_index("ts"), "ts", ts)
    gross = pc.multiply(lines["quantity"], lines["unit_price"])
    lines = lines.append_column("gross", gross)
    orders = lines.group_by(["order_id", "customer_id"], use_threads=False).aggregate(
        [("ts", "min"), ("channel", "first")]
    )
    rows["orders"] = _write(
        pa.table(
            {
                "order_id:ID(Order)": orders["order_id"],
                "ts:datetime": orders["ts_min"],
                "channel": orders["channel_first"],
            }
        ),
        out / "orders.csv",
    )
    _write(
        pa.table(
            {":START_ID(Customer)": orders["customer_id"], ":END_ID(Order)": orders["order_id"]}
        ),
        out / "placed.csv",
    )
    contains = lines.group_by(["order_id", "product_id"]).aggregate(
        [
            ("quantity", "sum"),
            ("gross", "sum"),
            ("unit_price", "mean"),
            ("discount", "max"),
            ("quantity", "count"),
        ]
    )
    rows["order_lines"] = lines.num_rows
    rows["contains"] = _write(
        pa.table(
            {
                ":START_ID(Order)": contains["order_id"],
                ":END_ID(Product)": contains["product_id"],
                "quantity:long": contains["quantity_sum"],
                "gross:double": contains["gross_sum"],
                "priced_quantity:long": contains["quantity_sum"],
                "unit_price:double": contains["unit_price_mean"],
                "discount:double": contains["discount_max"],
                "lines:long": contains["quantity_count"],
            }
        ),
        out / "contains.csv",
    )
    purchased = (
        lines.group_by(["customer_id", "product_id", "order_id"])
        .aggregate([("quantity", "sum"), ("ts", "min")])
        .group_by(["customer_id", "product_id"])
        .aggregate(
            [("order_id", "count"), ("quantity_sum", "sum"), ("ts_min", "min"), ("ts_min", "max")]
        )
    )
    rows["purchased"] = _write(
        pa.table(
            {
                ":START_ID(Customer)": purchased["customer_id"],
                ":END_ID(Product)": purchased["product_id"],
                "count:long": purchased["order_id_count"],
                "quantity:long": purchased["quantity_sum_sum"],
                "first_ts:datetime": purchased["ts_min_min"],
                "last_ts:datetime": purchased["ts_min_max"],
            }
        ),
        out / "purchased.csv",
    )

    events = _read(shop / "events.csv")
    rows["events"] = events.num_rows
    events = events.set_column(events.schema.get_field_index("ts"), "ts", _iso(events["ts"]))
    for kind, rel in EVENT_TYPES.items():
        some = events.filter(pc.equal(events["type"], kind))
        if not some.num_rows:
            continue
        grouped = some.sort_by("ts").group_by(["customer_id", "product_id"], use_threads=False)
        grouped = grouped.aggregate(
            [("ts", "list"), ("ts", "min"), ("ts", "max"), ("value", "max")]
        )
        rows[rel] = _write(
            pa.table(
                {
                    ":START_ID(Customer)": grouped["customer_id"],
                    ":END_ID(Product)": grouped["product_id"],
                    "ts:datetime[]": pc.binary_join(grouped["ts_list"], ";"),
                    "count:long": pc.list_value_length(grouped["ts_list"]),
                    "first_ts:datetime": grouped["ts_min"],
                    "last_ts:datetime": grouped["ts_max"],
                    "value:double": grouped["value_max"],
                }
            ),
            out / f"{rel.lower()}.csv",
        )
    return rows


def import_files(home: Path, files: Path) -> None:
    """`neo4j-admin database import full` into `home`'s store (created empty)."""
    nodes = {
        "Customer": "customers",
        "Segment": "segments",
        "Region": "regions",
        "Product": "products",
        "Category": "categories",
        "Brand": "brands",
        "Order": "orders",
    }
    rels = [
        "in_segment",
        "in_region",
        "subcategory_of",
        "in_category",
        "has_brand",
        "placed",
        "contains",
        "purchased",
        *[r.lower() for r in EVENT_TYPES.values()],
    ]
    args = [f"--nodes={label}={files / name}.csv" for label, name in nodes.items()]
    args += [
        f"--relationships={name.upper()}={files / name}.csv"
        for name in rels
        if (files / f"{name}.csv").exists()
    ]
    conf = home / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "neo4j.conf").write_text(f"server.directories.data={home.resolve() / 'data'}\n")
    subprocess.run(
        [
            "java",
            "-Xmx2g",
            "-cp",
            f"{LIB.resolve()}/*",
            "org.neo4j.cli.AdminTool",
            "database",
            "import",
            "full",
            "neo4j",  # before the file lists: they take every argument after them
            "--overwrite-destination",
            "--threads=2",
            "--high-parallel-io=on",
            f"--report-file={home.resolve() / 'import.report'}",  # not the current folder
            *args,
        ],
        env={"NEO4J_HOME": str(home), "NEO4J_CONF": str(conf), "PATH": "/usr/bin:/bin"},
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shop", type=Path, default=Path(".kgrec/bench/shop-50000-10000-365-1"))
    parser.add_argument("--work", type=Path, default=Path(".kgrec/bench/bulk-probe"))
    parser.add_argument("--port", type=int, default=7730)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    timings: dict[str, float] = {}
    began = time.perf_counter()
    rows = shape(args.shop, args.work / "files")
    timings["shape files (pyarrow)"] = time.perf_counter() - began
    print(json.dumps({"rows": rows, **timings}), flush=True)
    home = args.work / "neo4j"
    step = time.perf_counter()
    import_files(home, args.work / "files")
    timings["neo4j-admin import"] = time.perf_counter() - step
    step = time.perf_counter()
    settings = Neo4jSettings(
        uri=f"bolt://127.0.0.1:{args.port}", password=PASSWORD, heap="2g", pagecache="2g"
    )
    local = LocalNeo4j(settings, home)
    local.start()
    timings["start"] = time.perf_counter() - step
    try:
        step = time.perf_counter()
        with open_driver(settings) as driver:
            # Waits until every index is online (vector indexes of the default size, 128).
            apply_schema(driver, database="neo4j", embedding_dimensions=128)
            timings["schema + indexes online"] = time.perf_counter() - step
            counts = {
                r["label"]: r["n"]
                for r in driver.execute_query(
                    "CALL db.labels() YIELD label CALL (label) { MATCH (n) WHERE label IN "
                    "labels(n) RETURN count(n) AS n } RETURN label, n",
                    database_="neo4j",
                ).records
            }
            relationships = driver.execute_query(
                "MATCH ()-[r]->() RETURN count(r) AS n", database_="neo4j"
            ).records[0]["n"]
    finally:
        local.stop()
    total = sum(timings.values())
    report = {
        "rows": rows,
        "nodes": counts,
        "relationships": relationships,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "total_s": round(total, 1),
        "order_lines_per_s": round(rows["order_lines"] / total),
    }
    print(json.dumps(report, indent=2))
    (args.work / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
