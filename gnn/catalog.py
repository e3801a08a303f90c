"""Model names, importable without loading PyTorch (the CLI's help text uses them)."""

from __future__ import annotations

#: Every model `kgrec train` and `kgrec evaluate` know, baselines first.
MODEL_NAMES: tuple[str, ...] = (
    "popularity",
    "itemknn",
    "content",
    "bpr",
    "fastrp-knn",
    "lightgcn",
    "kg-gnn",
)
#: Models with embeddings the serving engine can use (the ones that can be activated).
EMBEDDING_MODELS: tuple[str, ...] = ("bpr", "lightgcn", "kg-gnn")
DEFAULT_MODEL = "kg-gnn"
