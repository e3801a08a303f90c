"""Embedding models: BPR matrix factorisation, LightGCN, and the heterogeneous knowledge-graph
GNN. All three score a customer and a product by the dot product of their vectors.

LightGCN and the heterogeneous model share the propagation and the training loop; they differ
in the graph, the input layer and the scoring defaults:
- **LightGCN** propagates free id embeddings over the customer-product graph of training and
  scores by cosine similarity with temperature 0.2.
- **KG-GNN** propagates over the whole heterogeneous graph (customers, products, categories
  with their hierarchy, brands, attributes, promotions, segments, regions, `RELATED` entities),
  and a product's input is its id embedding plus an encoding of its category path, brand and
  attributes. It scores by plain dot products (temperature 1), so a vector's length can carry
  how popular a product is. A random share of products is represented by its content encoding
  alone during training, so the model learns to place a product from its knowledge: a product
  nobody has bought, or a customer with one order, still lands near what they resemble.
  The knowledge edges' own contribution is measured inside KG-GNN (`knowledge_edges=false`),
  not against LightGCN (docs/benchmarks.md).
Both train with a softmax over the whole catalogue per customer (a batch of customers, each
with the products they bought), which converges in a few epochs on two CPU cores.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

# PyG 2.8 still calls torch.jit.script at import; the warning says nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support is in beta")
from torch_geometric.nn import LGConv  # noqa: E402

from gnn.models.base import EpochModel, FitContext  # noqa: E402
from gnn.snapshot import KNOWLEDGE_EDGES, NODE_TYPES, GraphSnapshot  # noqa: E402


def _user_item_csr(train: GraphSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (customer, product) pairs of training, sorted by customer: (indptr, products)."""
    keys = np.unique(train.customer.astype(np.int64) * train.n_products + train.product)
    owner, item = keys // train.n_products, keys % train.n_products
    indptr = np.zeros(train.n_customers + 1, dtype=np.int64)
    np.add.at(indptr, owner + 1, 1)
    return np.cumsum(indptr), item


class _EmbeddingModel(EpochModel):
    embedding_model: ClassVar[bool] = True
    module: nn.ModuleDict
    optimiser: torch.optim.Optimizer

    def table(self, name: str) -> nn.Embedding:
        table = self.module[name]
        assert isinstance(table, nn.Embedding)
        return table

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._users: torch.Tensor | None = None
        self._items: torch.Tensor | None = None

    def score(self, customers: np.ndarray) -> np.ndarray:
        assert self._users is not None and self._items is not None, "fit or load the model first"
        users = self._users[torch.from_numpy(np.asarray(customers, dtype=np.int64))]
        return (users @ self._items.T).numpy()

    def embeddings(self) -> tuple[np.ndarray, np.ndarray] | None:
        assert self._users is not None and self._items is not None
        return self._users.numpy(), self._items.numpy()

    def state(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), **self._extra_state()}

    def module_state(self) -> dict[str, Any]:
        return {"module": {k: v.clone() for k, v in self.module.state_dict().items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        """During a fit: the module's weights. From a saved file (no module built): the served
        vectors, which is all `score` and `embeddings` need."""
        if hasattr(self, "module"):
            self.module.load_state_dict(state["module"])
        if state.get("users") is not None:
            self._users, self._items = state["users"], state["items"]

    def _extra_state(self) -> dict[str, Any]:
        return {"users": self._users, "items": self._items}

    def _step(self, loss: torch.Tensor) -> float:
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        return loss.item()


class BPRMF(_EmbeddingModel):
    """Matrix factorisation with the BPR loss: one uniformly sampled negative per positive."""

    name: ClassVar[str] = "bpr"
    defaults: ClassVar[dict[str, Any]] = {
        "dim": 64,
        "epochs": 40,
        "lr": 0.005,
        "batch_size": 8192,
        "weight_decay": 1e-5,
    }

    def begin(self, train: GraphSnapshot, context: FitContext) -> None:
        dim = int(self.params["dim"])
        self.module = nn.ModuleDict(
            {
                "user_table": nn.Embedding(train.n_customers, dim),
                "item_table": nn.Embedding(train.n_products, dim),
            }
        )
        for name in ("user_table", "item_table"):
            nn.init.normal_(self.table(name).weight, std=0.1)
        indptr, items = _user_item_csr(train)
        self.pairs_user = torch.from_numpy(np.repeat(np.arange(train.n_customers), np.diff(indptr)))
        self.pairs_item = torch.from_numpy(items)
        self.optimiser = torch.optim.Adam(self.module.parameters(), lr=float(self.params["lr"]))
        self.generator = torch.Generator().manual_seed(context.seed)

    def train_epoch(self, epoch: int) -> float:
        self.module.train()
        order = torch.randperm(len(self.pairs_user), generator=self.generator)
        size = int(self.params["batch_size"])
        decay = float(self.params["weight_decay"])
        total, steps = 0.0, 0
        for start in range(0, len(order), size):
            pick = order[start : start + size]
            users = self.table("user_table")(self.pairs_user[pick])
            pos = self.table("item_table")(self.pairs_item[pick])
            neg_ids = torch.randint(0, self.n_products, (len(pick),), generator=self.generator)
            neg = self.table("item_table")(neg_ids)
            margin = (users * pos).sum(1) - (users * neg).sum(1)
            reg = decay * (users.pow(2).sum() + pos.pow(2).sum() + neg.pow(2).sum()) / len(pick)
            loss = -torch.nn.functional.logsigmoid(margin).mean() + reg
            total, steps = total + self._step(loss), steps + 1
        return total / max(steps, 1)

    def finish(self) -> None:
        with torch.no_grad():
            self._users = self.table("user_table").weight.detach().clone()
            self._items = self.table("item_table").weight.detach().clone()


def _normalised_adjacency(src: np.ndarray, dst: np.ndarray, n: int) -> torch.Tensor:
    """Symmetric D^-1/2 A D^-1/2 of an undirected graph given by its edges, as sparse CSR."""
    rows = np.concatenate([src, dst])
    cols = np.concatenate([dst, src])
    keys = np.unique(rows.astype(np.int64) * n + cols)
    rows, cols = keys // n, keys % n
    degree = np.bincount(rows, minlength=n).astype(np.float32)
    inv = np.where(degree > 0, 1 / np.sqrt(np.maximum(degree, 1)), 0).astype(np.float32)
    values = inv[rows] * inv[cols]
    coo = torch.sparse_coo_tensor(
        torch.from_numpy(np.stack([rows, cols])),
        torch.from_numpy(values),
        (n, n),
        check_invariants=False,
    ).coalesce()
    return coo.to_sparse_csr()


class _GraphModel(_EmbeddingModel):
    """Shared by LightGCN and KG-GNN: propagation with PyG's `LGConv` (mean of the layers),
    L2-normalised outputs, softmax over the catalogue with a temperature."""

    adjacency: torch.Tensor
    user_offset: int
    item_offset: int

    defaults: ClassVar[dict[str, Any]] = {
        "dim": 64,
        "layers": 2,
        "epochs": 25,
        "lr": 0.01,
        "batch_size": 2048,
        "temperature": 0.2,
        "weight_decay": 0.0,
        "normalize": True,
    }

    def begin(self, train: GraphSnapshot, context: FitContext) -> None:
        self.indptr, self.items = _user_item_csr(train)
        self.trained_users = np.flatnonzero(np.diff(self.indptr) > 0)
        self.generator = torch.Generator().manual_seed(context.seed)
        self.conv = LGConv(normalize=False)
        self.build(train)
        self.optimiser = torch.optim.Adam(
            self.module.parameters(),
            lr=float(self.params["lr"]),
            weight_decay=float(self.params["weight_decay"]),
        )

    def build(self, train: GraphSnapshot) -> None:
        raise NotImplementedError

    def inputs(self, training: bool) -> torch.Tensor:
        raise NotImplementedError

    def propagate(self, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.inputs(training)
        layers = [x]
        for _ in range(int(self.params["layers"])):
            x = self.conv(x, self.adjacency)
            layers.append(x)
        out = torch.stack(layers).mean(0)
        if self.params["normalize"]:
            out = torch.nn.functional.normalize(out, dim=1)
        users = out[self.user_offset : self.user_offset + self.n_customers]
        items = out[self.item_offset : self.item_offset + self.n_products]
        return users, items

    def train_epoch(self, epoch: int) -> float:
        self.module.train()
        order = self.trained_users[
            torch.randperm(len(self.trained_users), generator=self.generator).numpy()
        ]
        size = int(self.params["batch_size"])
        tau = float(self.params["temperature"])
        total, steps = 0.0, 0
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            users, items = self.propagate(training=True)
            logits = users[torch.from_numpy(batch)] @ items.T / tau
            log_probs = torch.log_softmax(logits, dim=1)
            counts = np.diff(self.indptr)[batch]
            rows = torch.from_numpy(np.repeat(np.arange(len(batch)), counts))
            cols = torch.from_numpy(
                np.concatenate([self.items[self.indptr[u] : self.indptr[u + 1]] for u in batch])
            )
            weights = torch.from_numpy(1.0 / np.repeat(counts, counts).astype(np.float32))
            loss = -(log_probs[rows, cols] * weights).sum() / len(batch)
            total, steps = total + self._step(loss), steps + 1
        return total / max(steps, 1)

    def finish(self) -> None:
        """Caches the serving vectors, the temperature folded into the customer side, so a
        plain dot product reproduces the training logits."""
        self.module.eval()
        with torch.no_grad():
            users, items = self.propagate(training=False)
            users = users / float(self.params["temperature"])
        self._users, self._items = users.detach().clone(), items.detach().clone()


class LightGCN(_GraphModel):
    name: ClassVar[str] = "lightgcn"
    defaults: ClassVar[dict[str, Any]] = dict(_GraphModel.defaults)

    def build(self, train: GraphSnapshot) -> None:
        dim = int(self.params["dim"])
        self.user_offset, self.item_offset = 0, train.n_customers
        n = train.n_customers + train.n_products
        src = np.repeat(np.arange(train.n_customers), np.diff(self.indptr))
        self.adjacency = _normalised_adjacency(src, self.items + train.n_customers, n)
        self.module = nn.ModuleDict({"nodes": nn.Embedding(n, dim)})
        nn.init.normal_(self.table("nodes").weight, std=0.1)

    def inputs(self, training: bool) -> torch.Tensor:
        return self.table("nodes").weight


class KnowledgeGNN(_GraphModel):
    """The heterogeneous model: every node type of the snapshot in one propagation graph, with
    a content encoder (category path, brand, attributes) added to each product's input."""

    name: ClassVar[str] = "kg-gnn"
    # Chosen on the 1M-line synthetic shop's validation period (bench/kg_gnn_choices.py):
    # plain dot products (vector length carries popularity) with temperature 1 beat cosine with
    # 0.2 (validation NDCG@10 0.1278 against 0.1219); id dropout did not help and is off.
    defaults: ClassVar[dict[str, Any]] = {
        **_GraphModel.defaults,
        "normalize": False,
        "temperature": 1.0,
        "id_dropout": 0.0,
        "cold_substitution": 0.1,
        "cold_length": 0.75,
        "knowledge_edges": True,
        "copurchase_neighbours": 0,
        "event_edges": False,
    }

    def build(self, train: GraphSnapshot) -> None:
        dim = int(self.params["dim"])
        self.offsets: dict[str, int] = {}
        total = 0
        for node_type in NODE_TYPES:
            self.offsets[node_type] = total
            total += len(train.maps[node_type])
        self.user_offset = self.offsets["customer"]
        self.item_offset = self.offsets["product"]
        src_all = [np.repeat(np.arange(train.n_customers), np.diff(self.indptr))]
        dst_all = [self.items + self.item_offset]
        if self.params["knowledge_edges"]:
            for name, (src, dst) in train.edges.items():
                src_type, dst_type = KNOWLEDGE_EDGES[name]
                src_all.append(src + self.offsets[src_type])
                dst_all.append(dst + self.offsets[dst_type])
        if self.params["event_edges"] and len(train.event_ts_ms):
            # Views, clicks and carts before the cut-off: what a customer looked at links them
            # to products too (one edge per distinct pair).
            src_all.append(train.event_customer + self.user_offset)
            dst_all.append(train.event_product + self.item_offset)
        k = int(self.params["copurchase_neighbours"])
        if k > 0:
            # Co-purchase edges from training orders: each product to its k most similar
            # products by cosine over customers (the item-kNN similarity).
            from gnn.models.baselines import ItemKNN

            knn = ItemKNN(neighbours=k)
            knn.fit(train, FitContext())
            similar = knn.similarity.tocoo()
            src_all.append(similar.row.astype(np.int64) + self.item_offset)
            dst_all.append(similar.col.astype(np.int64) + self.item_offset)
        self.adjacency = _normalised_adjacency(
            np.concatenate(src_all), np.concatenate(dst_all), total
        )
        # Content encoder: mean of the product's feature embeddings (category path, brand,
        # attributes), as a sparse products x features averaging matrix.
        r, c, width = train.content_pairs()
        per_row = np.bincount(r, minlength=train.n_products).astype(np.float32)
        values = 1 / np.maximum(per_row[r], 1)
        self.features = torch.sparse_coo_tensor(
            torch.from_numpy(np.stack([r, c])),
            torch.from_numpy(values),
            (train.n_products, max(width, 1)),
            check_invariants=False,
        ).coalesce()
        self.module = nn.ModuleDict(
            {
                "nodes": nn.Embedding(total, dim),
                "features": nn.Embedding(max(width, 1), dim),
            }
        )
        nn.init.normal_(self.table("nodes").weight, std=0.1)
        nn.init.normal_(self.table("features").weight, std=0.1)
        # Products never bought in training have untrained ids: read them from content only.
        bought = np.zeros(train.n_products, dtype=bool)
        bought[self.items] = True
        self.id_known = torch.from_numpy(bought.astype(np.float32))[:, None]

    def inputs(self, training: bool) -> torch.Tensor:
        nodes = self.table("nodes").weight
        content = torch.sparse.mm(self.features, self.table("features").weight)
        ids = nodes[self.item_offset : self.item_offset + self.n_products]
        keep = self.id_known
        rate = float(self.params["id_dropout"])
        if training and rate > 0:
            draw = torch.rand(self.n_products, 1, generator=self.generator) >= rate
            keep = keep * draw.float()
        products = ids * keep + content
        return torch.cat(
            [
                nodes[: self.item_offset],
                products,
                nodes[self.item_offset + self.n_products :],
            ]
        )

    def propagate(self, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Products nobody bought in training have no customer neighbours to propagate from:
        they are represented by their content encoding alone. In training, a random share of
        products (`cold_substitution`) is represented the same way, which teaches the content
        encoder to stand in for the missing interactions."""
        users, items = super().propagate(training)
        content = torch.sparse.mm(self.features, self.table("features").weight)
        if self.params["normalize"]:
            content = torch.nn.functional.normalize(content, dim=1)
        if training:
            rate = float(self.params["cold_substitution"])
            swap = (torch.rand(self.n_products, 1, generator=self.generator) < rate).float()
        else:
            swap = 1.0 - self.id_known
            if not self.params["normalize"] and bool(self.id_known.any()):
                # Unnormalised vectors carry popularity in their length, which a product nobody
                # has bought yet does not have: it gets its content direction at the
                # `cold_length` quantile of the bought products' lengths. At the mean length new
                # products almost never reach a top 10; the 0.75 quantile was the largest that
                # cost under 1% of overall validation NDCG@10 (docs/benchmarks.md).
                known = self.id_known[:, 0] > 0
                lengths = items[known].norm(dim=1)
                length = torch.quantile(lengths, float(self.params["cold_length"]))
                content = torch.nn.functional.normalize(content, dim=1) * length
        return users, items * (1 - swap) + content * swap

    def _extra_state(self) -> dict[str, Any]:
        return {**super()._extra_state(), "offsets": self.offsets}
