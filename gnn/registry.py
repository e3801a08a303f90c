"""Model registry: every training run is a `ModelVersion` node plus a versioned artifact folder.

Artifacts (`<KGREC_HOME>/models/<version_id>/`): `model.pt` (weights or state), `id_maps.json`
(customer and product ids in row order), `embeddings.npz` (for embedding models),
`metrics.json`, `params.json`, `drift_reference.json` (the training data's interaction mix and
score distribution, for drift monitoring). The folder is written under a temporary name and
renamed, so a crash never leaves a half-written version.

One version is active. Activation writes the version's embeddings to `Product`/`Customer`
nodes (where the vector indexes read them), and is gated: the candidate must beat the active
version's validation NDCG@10 by the configured margin, unless forced; a forced activation is
audited with its reason. Rollback reactivates the version that was active before. Every
activation and rollback is an `AuditEvent` (who, what, when, before, after).
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import neo4j
import numpy as np

from gnn.catalog import EMBEDDING_MODELS
from graph.errors import KgrecError
from graph.keys import cli_actor
from recommender.drift import top_level_categories, training_reference

if TYPE_CHECKING:  # types only: reading versions (the API's models page) must not load PyTorch
    from gnn.models.base import Recommender
    from gnn.snapshot import GraphSnapshot

GATE_METRIC = "ndcg@10"

#: The training snapshot's interaction mix and the model's score distribution on it, saved with
#: the artifacts at registration: what `GET /v1/monitoring/drift` compares the shop against.
DRIFT_REFERENCE = "drift_reference.json"


class RegistryError(KgrecError):
    """A registry action that cannot be done (unknown version, gate failed, no embeddings)."""


@dataclass(frozen=True)
class ModelVersion:
    version_id: str
    model: str
    created_at: datetime
    active: bool
    val_ndcg10: float | None
    test_ndcg10: float | None
    artifacts: Path
    has_embeddings: bool
    properties: dict[str, Any]

    @classmethod
    def from_node(cls, node: dict[str, Any]) -> ModelVersion:
        created = node["created_at"]
        return cls(
            version_id=node["version_id"],
            model=node["model"],
            created_at=created.to_native() if hasattr(created, "to_native") else created,
            active=bool(node.get("active")),
            val_ndcg10=node.get("val_ndcg10"),
            test_ndcg10=node.get("test_ndcg10"),
            artifacts=Path(node["artifacts"]),
            has_embeddings=bool(node.get("has_embeddings")),
            properties=dict(node),
        )


@dataclass(frozen=True)
class Activation:
    version: ModelVersion
    previous: ModelVersion | None
    forced: bool
    gate: str
    nodes_written: int


class Registry:
    def __init__(self, driver: neo4j.Driver, *, database: str, root: Path) -> None:
        self.driver = driver
        self.database = database
        self.root = root

    # -- registering --------------------------------------------------------------------------
    def register(
        self,
        model: Recommender,
        *,
        snapshot: GraphSnapshot,
        metrics: dict[str, Any],
        training: dict[str, Any],
    ) -> ModelVersion:
        """Saves the artifacts and creates the `ModelVersion` node (inactive)."""
        now = datetime.now(UTC)
        version_id = f"{model.name}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        folder = self.root / version_id
        staging = self.root / f".{version_id}.partial"
        staging.mkdir(parents=True, exist_ok=False)
        try:
            model.save(staging / "model.pt")
            (staging / "id_maps.json").write_text(
                json.dumps(
                    {
                        "customer": snapshot.maps["customer"].ids,
                        "product": snapshot.maps["product"].ids,
                    }
                )
            )
            vectors = model.embeddings() if model.embedding_model else None
            if vectors is not None:
                np.savez(staging / "embeddings.npz", customers=vectors[0], products=vectors[1])
            (staging / "metrics.json").write_text(json.dumps(metrics, indent=2))
            (staging / DRIFT_REFERENCE).write_text(json.dumps(_drift_reference(snapshot, vectors)))
            (staging / "params.json").write_text(
                json.dumps({"model": model.name, "params": model.params, **training}, indent=2)
            )
            staging.rename(folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        val = metrics.get("validation", {}).get("slices", {}).get("all", {}).get("metrics", {})
        test = metrics.get("test", {}).get("slices", {}).get("all", {}).get("metrics", {})
        properties = {
            "version_id": version_id,
            "model": model.name,
            "params": json.dumps(model.params, sort_keys=True),
            "metrics": json.dumps(metrics),
            "val_ndcg10": val.get(GATE_METRIC, {}).get("value"),
            "test_ndcg10": test.get(GATE_METRIC, {}).get("value"),
            "data_hash": snapshot.data_hash(),
            "graph_counts": json.dumps(snapshot.counts, sort_keys=True),
            "ingest_runs": snapshot.ingest_runs,
            "artifacts": str(folder.resolve()),
            "has_embeddings": vectors is not None,
            "dimensions": int(vectors[1].shape[1]) if vectors is not None else None,
            "training": json.dumps(training, sort_keys=True),
        }
        try:
            self.driver.execute_query(
                """
                CREATE (v:ModelVersion)
                SET v = $properties, v.created_at = datetime($created_ms_iso), v.active = false
                WITH v
                UNWIND $properties.ingest_runs AS run_id
                MATCH (r:IngestRun {run_id: run_id})
                MERGE (v)-[:TRAINED_ON]->(r)
                """,
                properties=properties,
                created_ms_iso=now.isoformat(),
                database_=self.database,
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return self.get(version_id)

    # -- reading ------------------------------------------------------------------------------
    def versions(self) -> list[ModelVersion]:
        records = self.driver.execute_query(
            "MATCH (v:ModelVersion) RETURN v ORDER BY v.created_at DESC",
            database_=self.database,
        ).records
        return [ModelVersion.from_node(dict(r["v"])) for r in records]

    def get(self, version_id: str) -> ModelVersion:
        records = self.driver.execute_query(
            "MATCH (v:ModelVersion {version_id: $id}) RETURN v",
            id=version_id,
            database_=self.database,
        ).records
        if not records:
            known = ", ".join(v.version_id for v in self.versions()[:5]) or "none yet"
            raise RegistryError(
                f"no model version {version_id!r}; recent versions: {known} "
                "(`kgrec models list` shows them all)"
            )
        return ModelVersion.from_node(dict(records[0]["v"]))

    def active(self) -> ModelVersion | None:
        records = self.driver.execute_query(
            "MATCH (v:ModelVersion {active: true}) RETURN v", database_=self.database
        ).records
        return ModelVersion.from_node(dict(records[0]["v"])) if records else None

    def audit_trail(self, limit: int = 50) -> list[dict[str, Any]]:
        records = self.driver.execute_query(
            "MATCH (e:AuditEvent) WHERE e.subject_type = 'ModelVersion' "
            "RETURN e ORDER BY e.ts DESC LIMIT $limit",
            limit=limit,
            database_=self.database,
        ).records
        return [dict(r["e"]) for r in records]

    # -- activation ---------------------------------------------------------------------------
    def activate(
        self,
        version_id: str,
        *,
        margin: float,
        force: bool = False,
        reason: str | None = None,
        actor: str | None = None,
        action: str = "activate",
    ) -> Activation:
        """Makes `version_id` the active version if it passes the gate (or `force`).

        Raises:
            RegistryError: unknown version, no embeddings, gate failed without force, or force
                without a reason.
        """
        candidate = self.get(version_id)
        current = self.active()
        if current is not None and current.version_id == candidate.version_id:
            raise RegistryError(f"{version_id} is already the active version; nothing changed")
        if not candidate.has_embeddings:
            raise RegistryError(
                f"{version_id} ({candidate.model}) has no embeddings to serve; activate an "
                f"embedding model ({', '.join(EMBEDDING_MODELS)})"
            )
        self._check_dimensions(candidate)
        gate = _gate(candidate, current, margin)
        passed = gate is None
        if not passed and not force:
            raise RegistryError(f"not activated: {gate}. Use --force with --reason to override")
        if force and not reason:
            raise RegistryError("--force needs --reason: forced activations are audited")
        written = self._write_embeddings(candidate)
        now = datetime.now(UTC)
        self.driver.execute_query(
            """
            OPTIONAL MATCH (old:ModelVersion {active: true})
            SET old.active = false, old.deactivated_at = datetime($now)
            WITH collect(old.version_id) AS before
            MATCH (v:ModelVersion {version_id: $id})
            SET v.active = true, v.activated_at = datetime($now),
                v.previous_version = CASE WHEN $action = 'rollback' THEN v.previous_version
                                          ELSE head(before) END
            CREATE (e:AuditEvent {
              event_id: $event_id, ts: datetime($now), actor: $actor, action: $action,
              subject_type: 'ModelVersion', subject_id: $id,
              before: coalesce(head(before), 'none'), after: $id,
              forced: $forced, gate: $gate, reason: $reason
            })
            """,
            id=candidate.version_id,
            now=now.isoformat(),
            action=action,
            event_id=uuid.uuid4().hex,
            actor=actor or cli_actor(),
            forced=bool(force and not passed),
            gate=gate or "passed",
            reason=reason,
            database_=self.database,
        )
        return Activation(
            version=self.get(candidate.version_id),
            previous=current,
            forced=bool(force and not passed),
            gate=gate or "passed",
            nodes_written=written,
        )

    def _check_dimensions(self, version: ModelVersion) -> None:
        """The vector indexes accept one size; a version of another size is refused."""
        records = self.driver.execute_query(
            "SHOW VECTOR INDEXES YIELD name, options WHERE name = 'product_embedding' "
            "RETURN options.indexConfig['vector.dimensions'] AS dimensions",
            database_=self.database,
        ).records
        size = version.properties.get("dimensions")
        if records and size is not None and int(records[0]["dimensions"]) != int(size):
            raise RegistryError(
                f"{version.version_id} has {size}-dimensional embeddings but the vector indexes "
                f"hold {records[0]['dimensions']}: train with the configured "
                "KGREC_EMBEDDING_DIMENSIONS, or change it and rebuild the indexes"
            )

    def rollback(self, *, actor: str | None = None, reason: str | None = None) -> Activation:
        """Reactivates the version that was active before the current one (no gate)."""
        current = self.active()
        if current is None:
            raise RegistryError("no active model version: nothing to roll back")
        previous_id = current.properties.get("previous_version")
        if not previous_id:
            raise RegistryError(
                f"{current.version_id} was the first active version: there is nothing to roll "
                "back to"
            )
        return self.activate(
            previous_id,
            margin=0.0,
            force=True,
            reason=reason or f"rollback from {current.version_id}",
            actor=actor,
            action="rollback",
        )

    def _write_embeddings(self, version: ModelVersion, batch: int = 5_000) -> int:
        """Writes the version's vectors to the nodes; opted-out customers get none (and lose
        any they had)."""
        maps = json.loads((version.artifacts / "id_maps.json").read_text())
        vectors = np.load(version.artifacts / "embeddings.npz")
        written = 0
        for label, ids, matrix in (
            ("Product", maps["product"], vectors["products"]),
            ("Customer", maps["customer"], vectors["customers"]),
        ):
            for start in range(0, len(ids), batch):
                rows = [
                    {"id": ids[i], "e": matrix[i].astype(float).tolist()}
                    for i in range(start, min(start + batch, len(ids)))
                ]
                summary = self.driver.execute_query(
                    _WRITE_EMBEDDINGS[label],
                    rows=rows,
                    version=version.version_id,
                    database_=self.database,
                ).summary
                written += summary.counters.properties_set // 2
        return written


def _drift_reference(
    snapshot: GraphSnapshot, vectors: tuple[np.ndarray, np.ndarray] | None
) -> dict[str, Any]:
    """The drift reference of the snapshot the version is registered with (its training data)."""
    top = top_level_categories(
        snapshot.n_products,
        snapshot.maps["category"].ids,
        snapshot.edges["in_category"],
        snapshot.edges["subcategory_of"],
    )
    return training_reference(
        product_rows=snapshot.product,
        customer_rows=snapshot.customer,
        ts_ms=snapshot.ts_ms,
        top_category=top,
        vectors=vectors,
    )


_WRITE_EMBEDDINGS = {
    "Product": """
        UNWIND $rows AS row
        MATCH (n:Product {product_id: row.id})
        SET n.embedding = row.e, n.embedding_version = $version
    """,
    "Customer": """
        UNWIND $rows AS row
        MATCH (n:Customer {customer_id: row.id})
        WITH n, row, coalesce(n.personalization, true) AS allowed
        SET n.embedding = CASE WHEN allowed THEN row.e ELSE null END,
            n.embedding_version = CASE WHEN allowed THEN $version ELSE null END
    """,
}


def _gate(candidate: ModelVersion, current: ModelVersion | None, margin: float) -> str | None:
    """None when the candidate may be activated, else the reason it may not."""
    if current is None:
        return None
    if candidate.val_ndcg10 is None:
        return f"{candidate.version_id} has no validation {GATE_METRIC} to compare"
    baseline = current.val_ndcg10 or 0.0
    needed = baseline * (1 + margin)
    if candidate.val_ndcg10 >= needed and candidate.val_ndcg10 > baseline:
        return None
    return (
        f"validation {GATE_METRIC} {candidate.val_ndcg10:.4f} does not beat the active "
        f"{current.version_id} ({baseline:.4f}) by the required margin of {margin:.1%} "
        f"(needs at least {needed:.4f})"
    )
