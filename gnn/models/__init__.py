"""Every model kgrec trains, by name (in the order of `gnn.catalog.MODEL_NAMES`)."""

from __future__ import annotations

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

__all__ = ["MODELS", "FitContext", "Recommender"]
