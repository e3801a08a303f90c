"""Models, split and evaluator on an in-memory snapshot of a generated shop (no Neo4j): no
leakage, exclusions, repeatable training, and the structure the models must learn."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from gnn.catalog import MODEL_NAMES
from gnn.evaluate import Evaluator
from gnn.models import MODELS, FitContext, Recommender, load_model
from gnn.snapshot import GraphSnapshot, to_hetero_data
from gnn.split import DAY_MS, LeakageError, assert_no_leakage, temporal_split, training_view
from gnn.train import Experiment, RunOptions
from graph.synthetic import ShopSpec, generate_shop
from tests.gnn.folder_snapshot import snapshot_from_folder

SPEC = ShopSpec(customers=3_000, products=300, days=240, seed=11, lines_per_customer=14)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> GraphSnapshot:
    folder: Path = tmp_path_factory.mktemp("gnn-shop")
    generate_shop(SPEC, folder)
    return snapshot_from_folder(folder)


class Recording(Recommender):
    """Remembers every interaction it was given: the leakage probe."""

    name: ClassVar[str] = "recording"
    defaults: ClassVar[dict[str, Any]] = {}
    seen: ClassVar[list[GraphSnapshot]] = []

    def fit(self, train: GraphSnapshot, context: FitContext) -> None:
        self.n_customers, self.n_products = train.n_customers, train.n_products
        Recording.seen.append(train)

    def score(self, customers: np.ndarray) -> np.ndarray:
        return np.zeros((len(customers), self.n_products), np.float32)


def test_catalogue_names_every_model() -> None:
    assert tuple(MODELS) == MODEL_NAMES


def test_split_periods_are_the_latest_days(shop: GraphSnapshot) -> None:
    split = temporal_split(shop, val_days=14, test_days=14)
    assert split.end_ms - split.test_start_ms == 14 * DAY_MS
    assert split.test_start_ms - split.val_start_ms == 14 * DAY_MS
    assert (split.train | split.val | split.test).all()
    assert not (split.train & split.val).any() and not (split.val & split.test).any()
    assert shop.ts_ms[split.train].max() < split.val_start_ms <= shop.ts_ms[split.val].min()
    with pytest.raises(ValueError, match="nothing is left to train on"):
        temporal_split(shop, val_days=200, test_days=200)


def test_no_test_interaction_reaches_training(
    shop: GraphSnapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plants an interaction that exists only in the test period (a pair nobody bought before)
    and runs the whole protocol with a model that records what it was given."""
    split = temporal_split(shop, val_days=14, test_days=14)
    planted_customer, planted_product = 0, shop.n_products - 1
    planted_ts = split.end_ms - DAY_MS
    planted = replace(
        shop,
        customer=np.append(shop.customer, planted_customer),
        product=np.append(shop.product, planted_product),
        ts_ms=np.append(shop.ts_ms, planted_ts),
        quantity=np.append(shop.quantity, np.float32(1)),
        # A view in the test period too: events are cut like order lines.
        event_customer=np.append(shop.event_customer, planted_customer),
        event_product=np.append(shop.event_product, planted_product),
        event_kind=np.append(shop.event_kind, 0),
        event_ts_ms=np.append(shop.event_ts_ms, planted_ts),
    )
    monkeypatch.setitem(MODELS, "recording", Recording)
    Recording.seen.clear()
    experiment = Experiment(planted, RunOptions(val_days=14, test_days=14, bootstrap_rounds=100))
    experiment.run("recording")
    first_fit, refit = Recording.seen
    assert first_fit.ts_ms.max() < experiment.split.val_start_ms
    assert refit.ts_ms.max() < experiment.split.test_start_ms
    assert first_fit.event_ts_ms.max() < experiment.split.val_start_ms
    assert refit.event_ts_ms.max() < experiment.split.test_start_ms
    for seen in Recording.seen:
        pairs = set(zip(seen.customer.tolist(), seen.ts_ms.tolist(), strict=True))
        assert (planted_customer, planted_ts) not in pairs
        assert planted_ts not in set(seen.event_ts_ms.tolist())
    with pytest.raises(LeakageError, match="order line"):
        assert_no_leakage(planted, split.test_start_ms)
    only_event = replace(planted, ts_ms=np.empty(0, dtype=np.int64))
    with pytest.raises(LeakageError, match="an event"):
        assert_no_leakage(only_event, split.test_start_ms)


def test_training_view_holds_only_the_past(shop: GraphSnapshot) -> None:
    split = temporal_split(shop, val_days=14, test_days=14)
    view = training_view(shop, split.val_start_ms)
    assert len(view.ts_ms) == int(split.train.sum())
    assert view.ts_ms.max() < split.val_start_ms


def test_evaluator_excludes_what_was_bought_before(shop: GraphSnapshot) -> None:
    split = temporal_split(shop, val_days=14, test_days=14)
    evaluator = Evaluator(shop, start_ms=split.test_start_ms, end_ms=split.end_ms, period="test")
    model = MODELS["popularity"](window_days=0)
    model.fit(training_view(shop, split.test_start_ms), FitContext())
    top = evaluator.top_k(model, 20)
    for row, user in enumerate(evaluator.users.tolist()):
        bought = evaluator.history.get(user, np.empty(0))
        assert not np.isin(top[row], bought).any()
        assert not np.isin(evaluator.targets[row], bought).any()
    repurchase = Evaluator(
        shop,
        start_ms=split.test_start_ms,
        end_ms=split.end_ms,
        period="test",
        allow_repurchase=True,
    )
    assert sum(map(len, repurchase.targets)) > sum(map(len, evaluator.targets))


def test_training_is_repeatable_with_a_seed(shop: GraphSnapshot) -> None:
    split = temporal_split(shop, val_days=14, test_days=14)
    train = training_view(shop, split.val_start_ms)
    users = np.arange(50)
    scores = []
    for _ in range(2):
        model = MODELS["kg-gnn"](epochs=3)
        model.fit(train, FitContext(seed=5))
        scores.append(model.score(users))
    np.testing.assert_array_equal(scores[0], scores[1])
    other = MODELS["kg-gnn"](epochs=3)
    other.fit(train, FitContext(seed=6))
    assert not np.array_equal(scores[0], other.score(users))


@pytest.mark.slow
def test_models_learn_the_shop_and_the_knowledge_graph_helps_cold_start(
    shop: GraphSnapshot,
) -> None:
    experiment = Experiment(
        shop, RunOptions(val_days=28, test_days=28, bootstrap_rounds=200, refit=False)
    )
    results = {
        name: experiment.run(name).test
        for name in ("popularity", "itemknn", "content", "bpr", "lightgcn", "kg-gnn")
    }
    ndcg = {name: r.ndcg10() for name, r in results.items() if r is not None}
    # Customers have stable tastes: every personal model beats the popularity ranking.
    for name in ("itemknn", "content", "lightgcn", "kg-gnn"):
        assert ndcg[name] > ndcg["popularity"], ndcg
    new = {name: r.slices["new_products"] for name, r in results.items() if r is not None}
    assert new["kg-gnn"].users > 0
    # Products nobody bought in training: only their knowledge edges can place them.
    assert new["kg-gnn"].value("ndcg@10") > new["lightgcn"].value("ndcg@10")
    assert new["kg-gnn"].value("ndcg@10") > new["popularity"].value("ndcg@10")


def test_hetero_data_matches_the_snapshot(shop: GraphSnapshot) -> None:
    data = to_hetero_data(shop)
    assert data["customer"].num_nodes == shop.n_customers
    assert data["product"].num_nodes == shop.n_products
    assert data["customer", "bought", "product"].edge_index.shape[1] == len(shop.customer)
    assert data["product", "in_category", "category"].edge_index.shape[1] == len(
        shop.edges["in_category"][0]
    )
    assert ("category", "rev_in_category", "product") in data.edge_types
    viewed = data["customer", "viewed", "product"]
    assert viewed.edge_index.shape[1] == int((shop.event_kind == 0).sum()) > 0
    split = temporal_split(shop, val_days=14, test_days=14)
    train = to_hetero_data(shop, split.train, events_before=split.val_start_ms)
    assert train["customer", "bought", "product"].time.max() < split.val_start_ms
    assert train["customer", "viewed", "product"].time.max() < split.val_start_ms


@pytest.mark.parametrize("name", ["popularity", "itemknn", "content", "bpr", "kg-gnn"])
def test_saved_models_score_the_same_after_loading(
    shop: GraphSnapshot, tmp_path: Path, name: str
) -> None:
    split = temporal_split(shop, val_days=14, test_days=14)
    params = {"epochs": 2} if "epochs" in MODELS[name].defaults else {}
    model = MODELS[name](**params)
    model.fit(training_view(shop, split.val_start_ms), FitContext(seed=3))
    model.save(tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    users = np.arange(40)
    np.testing.assert_allclose(loaded.score(users), model.score(users), rtol=1e-6)
    assert loaded.params == model.params
