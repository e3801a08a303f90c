"""Zeroes erased customers' rows in a saved model (`model.pt` of a registry version).

Run as `python -m gnn.erasure MODEL_PT ROW...` by `recommender/privacy.py`, in a child process
so that the API never loads PyTorch. Customer-indexed state: the served customer vectors
(`users`), purchase histories (`history`, a sparse matrix), and the module's customer rows
(`user_table.weight`, or `nodes.weight` from the customer offset). Products, features and
similarities are aggregates over everyone and stay. Prints the number of rows zeroed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch


def _zero(holder: dict[str, Any], key: str, rows: list[int]) -> int:
    """Zeroes `rows` of `holder[key]` (a tensor, an array or a sparse matrix)."""
    value = holder[key]
    if value is None:
        return 0
    if isinstance(value, torch.Tensor | np.ndarray):
        value[rows] = 0
        return len(rows)
    if sp.issparse(value):
        matrix = sp.csr_matrix(value, copy=True)
        for row in rows:
            matrix.data[matrix.indptr[row] : matrix.indptr[row + 1]] = 0
        matrix.eliminate_zeros()
        holder[key] = matrix.asformat(value.format)
        return len(rows)
    raise TypeError(f"cannot erase rows from {key}, a {type(value).__name__}")


def erase_rows(path: Path, rows: list[int]) -> int:
    """Rewrites `path` with `rows` (customer indexes) zeroed; returns entries zeroed."""
    saved = torch.load(path, weights_only=False)
    state: dict[str, Any] = saved["state"]
    zeroed = 0
    for key in ("users", "history"):
        if key in state:
            zeroed += _zero(state, key, rows)
    module = state.get("module") or {}
    if "user_table.weight" in module:
        zeroed += _zero(module, "user_table.weight", rows)
    if "nodes.weight" in module:
        offset = int((state.get("offsets") or {}).get("customer", 0))
        zeroed += _zero(module, "nodes.weight", [offset + r for r in rows])
    temporary = path.with_name(f".{path.name}.erasing")
    torch.save(saved, temporary)
    temporary.replace(path)
    return zeroed


def main(argv: list[str]) -> int:
    path, rows = Path(argv[0]), [int(r) for r in argv[1:]]
    print(erase_rows(path, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
