"""One interface for every model, and the epoch loop with early stopping the trained ones share.

A model is fitted on a training view of the graph (`gnn.split.training_view`) and then scores
any customers against every product. Models with embeddings (`embedding_model = True`) also
expose them: the dot product of a customer's and a product's vector is the model's score, which
is what the serving engine and the Neo4j vector indexes use.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from gnn.snapshot import GraphSnapshot

Validator = Callable[["Recommender"], float]


@dataclass
class FitContext:
    """What a fit may use besides the training view: a validator for early stopping, seeds,
    limits and a progress callback `(epoch, max_epochs, loss, val_ndcg10)`."""

    seed: int = 0
    validator: Validator | None = None
    max_epochs: int | None = None
    patience: int = 3
    on_epoch: Callable[[int, int, float, float | None], None] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float | None = None


class Recommender:
    name: ClassVar[str] = "base"
    embedding_model: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"model {self.name!r} has no parameter(s) {sorted(unknown)}; "
                f"it takes {sorted(self.defaults)}"
            )
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.n_customers = 0
        self.n_products = 0

    def fit(self, train: GraphSnapshot, context: FitContext) -> None:
        raise NotImplementedError

    def score(self, customers: np.ndarray) -> np.ndarray:
        """[len(customers), n_products] scores; higher ranks first."""
        raise NotImplementedError

    def embeddings(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(customer vectors, product vectors) whose dot product is the score, if any."""
        return None

    # -- persistence: a state dict of tensors/arrays plus the parameters --------------------------
    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def save(self, path: Path) -> None:
        torch.save(
            {
                "name": self.name,
                "params": self.params,
                "n_customers": self.n_customers,
                "n_products": self.n_products,
                "state": self.state(),
            },
            path,
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class EpochModel(Recommender):
    """A model trained epoch by epoch with early stopping on validation NDCG@10."""

    defaults: ClassVar[dict[str, Any]] = {"epochs": 30}

    def begin(self, train: GraphSnapshot, context: FitContext) -> None:
        raise NotImplementedError

    def train_epoch(self, epoch: int) -> float:
        raise NotImplementedError

    def finish(self) -> None:
        """Called after the last epoch (for example to cache final embeddings)."""

    def module_state(self) -> dict[str, Any]:
        return self.state()

    def fit(self, train: GraphSnapshot, context: FitContext) -> None:
        seed_everything(context.seed)
        self.n_customers, self.n_products = train.n_customers, train.n_products
        self.begin(train, context)
        max_epochs = context.max_epochs or int(self.params["epochs"])
        best_state: dict[str, Any] | None = None
        best, stale = -1.0, 0
        for epoch in range(1, max_epochs + 1):
            began = time.monotonic()
            loss = self.train_epoch(epoch)
            self.finish()
            val = context.validator(self) if context.validator else None
            context.history.append(
                {
                    "epoch": epoch,
                    "loss": loss,
                    "val_ndcg@10": float("nan") if val is None else val,
                    "seconds": time.monotonic() - began,
                }
            )
            if context.on_epoch:
                context.on_epoch(epoch, max_epochs, loss, val)
            if val is None:
                context.best_epoch = epoch
                continue
            if val > best:
                best, stale = val, 0
                best_state = copy.deepcopy(self.module_state())
                context.best_epoch, context.best_val = epoch, val
            else:
                stale += 1
                if stale >= context.patience:
                    break
        if best_state is not None:
            self.load_state(best_state)
            self.finish()
