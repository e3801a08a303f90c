"""Every model kgrec trains, by name (in the order of `gnn.catalog.MODEL_NAMES`)."""

from __future__ import annotations

from pathlib import Path

import torch

from gnn.catalog import MODEL_NAMES
from gnn.models.base import FitContext, Recommender
from gnn.models.baselines import ContentBased, ItemKNN, Popularity
from gnn.models.embedding import BPRMF, KnowledgeGNN, LightGCN
from gnn.models.gds import FastRPKNN

_CLASSES: dict[str, type[Recommender]] = {
    model.name: model
    for model in (Popularity, ItemKNN, ContentBased, BPRMF, FastRPKNN, LightGCN, KnowledgeGNN)
}
MODELS: dict[str, type[Recommender]] = {name: _CLASSES[name] for name in MODEL_NAMES}


def load_model(path: Path) -> Recommender:
    """A model saved by `Recommender.save` (a registry artifact's `model.pt`), ready to score."""
    saved = torch.load(path, weights_only=False)
    model = MODELS[saved["name"]](**saved["params"])
    model.n_customers, model.n_products = saved["n_customers"], saved["n_products"]
    model.load_state(saved["state"])
    return model


__all__ = ["MODELS", "FitContext", "Recommender", "load_model"]
