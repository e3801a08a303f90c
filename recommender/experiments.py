"""A/B experiments: `Experiment` nodes with variants (a model version, ranking weights, or the
control as served now) and a traffic split; customers assigned by a stable hash; served lists
of experiment traffic written back with the experiment and variant; a report per variant;
stop and promote, each audited.

Assignment needs no storage: `assign` hashes (experiment id, customer id) with SHA-256, so every
API process, before and after a restart, puts a customer in the same variant. Exposure is the
served-list write-back (`WAS_RECOMMENDED {experiment_id, variant, list_id}`), which records
every list of experiment traffic (the sample rate applies to other lists only): the report
counts customers, lists, clicks and orders from it and the shipped events.

Promotion: a model-version winner is activated through the registry with `force` (the live
experiment is the evidence, stronger than the offline NDCG gate) and the reason names the
experiment, so the registry's own audit event says why the gate was bypassed. A ranking winner's
weights are stored on the experiment (`promoted_ranking`) and every API process applies them
over `KGREC_SURFACE_WEIGHTS` for the experiment's surfaces at its next refresh; later promotions
apply after earlier ones. Promoting the control changes nothing but the record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import neo4j
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from graph.cypher import load_cypher
from graph.errors import KgrecError
from graph.keys import cli_actor
from recommender.engine import Engine, RankingWeights
from recommender.snapshot import ServingSnapshot, _vectors

if TYPE_CHECKING:  # statsmodels loads with the first report, not in every API worker (~50 MiB)
    from recommender.experiment_stats import StatsReport

logger = logging.getLogger(__name__)

#: Surfaces an experiment can run on: lists served to a known customer (product pages have no
#: customer to assign).
EXPERIMENT_SURFACES = ("home", "email", "cart")
ExperimentSurface = Literal["home", "email", "cart"]
_WEIGHT_FIELDS = {f.name for f in fields(RankingWeights)}
_INTEGER_WEIGHTS = {"candidates", "max_per_category"}


class ExperimentError(KgrecError):
    """An experiment action that cannot be done (unknown variant, bad model version); `field`
    names the input at fault when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ExperimentNotFound(ExperimentError):
    """No experiment with this id."""


class ExperimentConflict(ExperimentError):
    """The action clashes with the experiment's state or another running experiment."""


# -- what an operator asks for ----------------------------------------------------------------
class VariantSpec(BaseModel):
    """One arm: a model version, ranking weights over the surface's, both, or neither (the
    control as served now)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,40}$")] = Field(
        description="Letters, digits, '_', '-', '.'; 1-40 characters."
    )
    weight: float = Field(gt=0, le=1, description="Share of customers; the weights sum to 1.")
    model_version: str | None = Field(
        None, min_length=1, max_length=200, description="A registered version with embeddings."
    )
    ranking: dict[str, float | int | None] = Field(
        default_factory=dict,
        description="Ranking weights over the surface's (names as in KGREC_SURFACE_WEIGHTS: "
        + ", ".join(sorted(_WEIGHT_FIELDS))
        + ").",
    )

    @model_validator(mode="after")
    def _known_weights(self) -> VariantSpec:
        unknown = sorted(set(self.ranking) - _WEIGHT_FIELDS)
        if unknown:
            raise ValueError(
                f"ranking: unknown weight(s) {unknown}; known: {sorted(_WEIGHT_FIELDS)}"
            )
        for key, value in self.ranking.items():
            if value is None and key != "max_per_category":
                raise ValueError(
                    f"ranking.{key}: must be a number (only max_per_category may be null)"
                )
            if value is not None and not math.isfinite(value):
                raise ValueError(f"ranking.{key}: must be finite")
            if key in _INTEGER_WEIGHTS and value is not None and (value < 1 or value != int(value)):
                raise ValueError(f"ranking.{key}: must be a whole number of at least 1")
            if key not in _INTEGER_WEIGHTS and value is not None and not -5 <= value <= 5:
                raise ValueError(f"ranking.{key}: must be between -5 and 5 (relevance is 0 to 1)")
        return self


class ExperimentSpec(BaseModel):
    """A new experiment as an operator writes it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "kg-gnn December retrain",
                    "surfaces": ["home", "email"],
                    "variants": [
                        {"name": "control", "weight": 0.5},
                        {"name": "retrained", "weight": 0.5, "model_version": "kg-gnn-2026..."},
                    ],
                },
                {
                    "name": "more variety on home",
                    "surfaces": ["home"],
                    "variants": [
                        {"name": "control", "weight": 0.5},
                        {"name": "diverse", "weight": 0.5, "ranking": {"diversity": 0.3}},
                    ],
                },
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    surfaces: list[ExperimentSurface] = Field(
        min_length=1, description="Where it runs: home, email, cart (lists with a customer)."
    )
    variants: list[VariantSpec] = Field(min_length=2, max_length=10)
    control: str | None = Field(
        None, description="The variant the others are compared to; default: the first."
    )
    note: str = Field("", max_length=1000, description="Why, for the audit trail.")

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variants: names must be unique, got {names}")
        if len(set(self.surfaces)) != len(self.surfaces):
            raise ValueError(f"surfaces: listed twice in {self.surfaces}")
        total = math.fsum(v.weight for v in self.variants)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"variants: weights must sum to 1, got {total:g}")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control: {self.control!r} is not a variant; variants: {names}")
        return self


# -- what is stored -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    name: str
    weight: float
    model_version: str | None
    ranking: dict[str, float | int | None]

    @property
    def changes_serving(self) -> bool:
        return self.model_version is not None or bool(self.ranking)

    def describe(self) -> str:
        parts = []
        if self.model_version:
            parts.append(f"model {self.model_version}")
        if self.ranking:
            parts.append(f"ranking {json.dumps(self.ranking, sort_keys=True)}")
        return ", ".join(parts) or "as served now"


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    status: Literal["running", "stopped"]
    surfaces: tuple[str, ...]
    variants: tuple[Variant, ...]
    control: str
    note: str
    created_at: datetime
    created_by: str
    stopped_at: datetime | None = None
    stopped_by: str | None = None
    promoted_variant: str | None = None
    promoted_at: datetime | None = None
    promoted_by: str | None = None

    def variant(self, name: str) -> Variant:
        """Raises:
        ExperimentError: no variant of that name.
        """
        for v in self.variants:
            if v.name == name:
                return v
        raise ExperimentError(
            f"experiment {self.experiment_id} has no variant {name!r}; variants: "
            f"{', '.join(v.name for v in self.variants)}",
            field="variant",
        )

    @classmethod
    def from_node(cls, node: Mapping[str, Any]) -> Experiment:
        def when(key: str) -> datetime | None:
            value = node.get(key)
            return None if value is None else value.to_native()

        created = when("created_at")
        assert created is not None
        return cls(
            experiment_id=node["experiment_id"],
            name=node["name"],
            status=node["status"],
            surfaces=tuple(node["surfaces"]),
            variants=tuple(
                Variant(
                    v["name"], float(v["weight"]), v.get("model_version"), v.get("ranking") or {}
                )
                for v in json.loads(node["variants"])
            ),
            control=node["control"],
            note=node.get("note") or "",
            created_at=created,
            created_by=node.get("created_by") or "unknown",
            stopped_at=when("stopped_at"),
            stopped_by=node.get("stopped_by"),
            promoted_variant=node.get("promoted_variant"),
            promoted_at=when("promoted_at"),
            promoted_by=node.get("promoted_by"),
        )


def bucket(experiment_id: str, customer_id: str) -> float:
    """A number in [0, 1) fixed by the experiment and the customer: the first 8 bytes of
    SHA-256 (Python's `hash` is salted per process, so it would move customers on restart)."""
    digest = hashlib.sha256(f"{experiment_id}\x1f{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(experiment_id: str, customer_id: str, variants: Sequence[Variant]) -> Variant:
    """The customer's variant: their bucket falls in one variant's share of [0, 1)."""
    point = bucket(experiment_id, customer_id)
    edge = 0.0
    for variant in variants:
        edge += variant.weight
        if point < edge:
            return variant
    return variants[-1]  # weights summing to 1 - 1e-12: the last share takes the rest


# -- the report ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExperimentReport:
    experiment: Experiment
    window_end: datetime
    stats: StatsReport
    customers_in_several_variants: int  # left out (only if variants changed under a worker)


@dataclass(frozen=True)
class Promotion:
    experiment: Experiment
    variant: Variant
    activated_model: str | None  # the version activated through the registry, if any
    ranking: dict[str, float | int | None] | None  # weights serving applies from now on


class ExperimentStore:
    """Experiments in Neo4j; every create, stop and promote writes an `AuditEvent`."""

    def __init__(self, driver: neo4j.Driver, *, database: str) -> None:
        self.driver = driver
        self.database = database

    def _read(self, name: str, **params: Any) -> list[neo4j.Record]:
        records, _, _ = self.driver.execute_query(
            load_cypher("recommender", name),
            params,
            routing_=neo4j.RoutingControl.READ,
            database_=self.database,
        )
        return records

    # -- reading ------------------------------------------------------------------------------
    def recent(self, limit: int = 100) -> list[Experiment]:
        return [Experiment.from_node(r["e"]) for r in self._read("experiments_list", limit=limit)]

    def running(self) -> list[Experiment]:
        return [Experiment.from_node(r["e"]) for r in self._read("experiments_running")]

    def get(self, experiment_id: str) -> Experiment:
        """Raises:
        ExperimentNotFound: no experiment with this id.
        """
        records = self._read("experiments_get", experiment_id=experiment_id)
        if not records:
            raise ExperimentNotFound(
                f"no experiment {experiment_id!r} (`kgrec experiments list` shows them)"
            )
        return Experiment.from_node(records[0]["e"])

    def audit_trail(self, experiment_id: str) -> list[dict[str, Any]]:
        return [dict(r["a"]) for r in self._read("experiments_audit", experiment_id=experiment_id)]

    def model_versions(self, version_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        records = self._read("experiments_model_versions", version_ids=list(version_ids))
        return {r["version_id"]: dict(r) for r in records}

    def promoted_ranking(self) -> list[tuple[tuple[str, ...], dict[str, float | int | None]]]:
        """(surfaces, weights) of every promoted ranking, in promotion order."""
        return [
            (tuple(r["surfaces"]), json.loads(r["ranking"]))
            for r in self._read("experiments_promoted_ranking")
        ]

    # -- changing -----------------------------------------------------------------------------
    def create(self, spec: ExperimentSpec, *, actor: str | None = None) -> Experiment:
        """Starts an experiment.

        Raises:
            ExperimentError: a model version that does not exist or has no embeddings.
            ExperimentConflict: a running experiment already uses one of the surfaces.
        """
        named = [v.model_version for v in spec.variants if v.model_version]
        found = self.model_versions(named)
        for i, variant in enumerate(spec.variants):
            if variant.model_version is None:
                continue
            info = found[variant.model_version]
            if not info["found"]:
                raise ExperimentError(
                    f"variants[{i}].model_version: no model version {variant.model_version!r} "
                    "(`kgrec models list` shows them)",
                    field=f"variants.{i}.model_version",
                )
            if not info["has_embeddings"]:
                raise ExperimentError(
                    f"variants[{i}].model_version: {variant.model_version} has no embeddings "
                    "to serve; train an embedding model",
                    field=f"variants.{i}.model_version",
                )
        experiment_id = f"exp-{uuid.uuid4().hex[:10]}"
        variants = [v.model_dump(exclude_none=False) for v in spec.variants]
        props = {
            "experiment_id": experiment_id,
            "name": spec.name,
            "status": "running",
            "surfaces": list(spec.surfaces),
            "variants": json.dumps(variants, sort_keys=True),
            "control": spec.control or spec.variants[0].name,
            "note": spec.note,
        }
        arms = [Variant(v.name, v.weight, v.model_version, v.ranking) for v in spec.variants]
        after = "running: " + "; ".join(f"{v.name} {v.weight:g} ({v.describe()})" for v in arms)

        def work(tx: neo4j.ManagedTransaction) -> None:
            # Checked in the transaction that creates: the write serialises with a concurrent
            # stop; two creates racing on the same surface within milliseconds are not ruled
            # out (an admin action; the second would show in `experiments list`).
            for record in tx.run(load_cypher("recommender", "experiments_running")):
                other = Experiment.from_node(record["e"])
                shared = sorted(set(other.surfaces) & set(spec.surfaces))
                if shared:
                    raise ExperimentConflict(
                        f"experiment {other.experiment_id} ({other.name!r}) is already running "
                        f"on {', '.join(shared)}; stop it first (at most one running experiment "
                        "per surface, so each list has one source)"
                    )
            tx.run(
                load_cypher("recommender", "experiments_create"),
                experiment=props,
                now=datetime.now(UTC).isoformat(),
                actor=actor or cli_actor(),
                event_id=uuid.uuid4().hex,
                after=after,
                reason=spec.note or None,
            ).consume()

        with self.driver.session(database=self.database) as session:
            session.execute_write(work)
        return self.get(experiment_id)

    def stop(
        self, experiment_id: str, *, actor: str | None = None, reason: str | None = None
    ) -> Experiment:
        """Stops serving variants; the report keeps counting up to the stop.

        Raises:
            ExperimentNotFound, ExperimentConflict: unknown, or already stopped.
        """
        current = self.get(experiment_id)
        records, _, _ = self.driver.execute_query(
            load_cypher("recommender", "experiments_stop"),
            experiment_id=experiment_id,
            now=datetime.now(UTC).isoformat(),
            actor=actor or cli_actor(),
            event_id=uuid.uuid4().hex,
            reason=reason,
            database_=self.database,
        )
        if not records:
            raise ExperimentConflict(
                f"experiment {experiment_id} is {current.status}, not running: nothing to stop"
            )
        return Experiment.from_node(records[0]["e"])

    def promote(
        self,
        experiment_id: str,
        variant_name: str,
        *,
        activate: Callable[[str, str], None],
        active_model: str | None,
        actor: str | None = None,
        reason: str | None = None,
    ) -> Promotion:
        """Makes a variant what everyone gets: stops the experiment if it runs, activates a
        model-version winner through `activate(version_id, reason)` (the registry, forced and
        audited there), and records the winner (ranking weights included) with an audit event.

        Raises:
            ExperimentNotFound, ExperimentError (unknown variant), ExperimentConflict (already
            promoted), and whatever `activate` raises (nothing is recorded then).
        """
        who = actor or cli_actor()
        experiment = self.get(experiment_id)
        variant = experiment.variant(variant_name)
        if experiment.promoted_variant is not None:
            raise ExperimentConflict(
                f"experiment {experiment_id} already promoted {experiment.promoted_variant!r} "
                f"on {experiment.promoted_at:%Y-%m-%d %H:%M} UTC; start a new experiment to "
                "change it again"
            )
        if experiment.status == "running":
            experiment = self.stop(
                experiment_id, actor=who, reason=f"stopped to promote {variant_name!r}"
            )
        why = f"winner of experiment {experiment_id} ({experiment.name!r})" + (
            f": {reason}" if reason else ""
        )
        activated = None
        if variant.model_version and variant.model_version != active_model:
            activate(variant.model_version, why)
            activated = variant.model_version
        ranking = dict(variant.ranking) if variant.ranking else None
        after = f"variant {variant.name}: {variant.describe()}"
        records, _, _ = self.driver.execute_query(
            load_cypher("recommender", "experiments_promote"),
            experiment_id=experiment_id,
            variant=variant.name,
            ranking=None if ranking is None else json.dumps(ranking, sort_keys=True),
            now=datetime.now(UTC).isoformat(),
            actor=who,
            event_id=uuid.uuid4().hex,
            before=f"active model {active_model or 'none'}",
            after=after,
            reason=reason,
            database_=self.database,
        )
        if not records:
            raise ExperimentConflict(f"experiment {experiment_id} was promoted concurrently")
        return Promotion(Experiment.from_node(records[0]["e"]), variant, activated, ranking)

    # -- the report ----------------------------------------------------------------------------
    def report(self, experiment_id: str, *, alpha: float = 0.05) -> ExperimentReport:
        """Per variant: exposed customers, lists, clicks, the tested rates and revenue, each
        against the control (see `recommender.experiment_stats`)."""
        from recommender.experiment_stats import VariantOutcomes, analyse

        experiment = self.get(experiment_id)
        end = experiment.stopped_at or datetime.now(UTC)
        rows = self._read("experiments_report", experiment_id=experiment_id, end=end)
        per_variant: dict[str, list[neo4j.Record]] = {v.name: [] for v in experiment.variants}
        several = 0
        for row in rows:
            variants = row["variants"]
            if len(variants) != 1:
                several += 1
                continue
            per_variant.setdefault(variants[0], []).append(row)
        outcomes = [
            VariantOutcomes(
                name=name,
                clicked=np.array([r["clicks"] > 0 for r in got], dtype=bool),
                carted=np.array([bool(r["carted"]) for r in got], dtype=bool),
                converted=np.array([bool(r["converted"]) for r in got], dtype=bool),
                revenue=np.array([float(r["revenue"]) for r in got], dtype=float),
                lists=sum(int(r["lists"]) for r in got),
                impressions=sum(int(r["impressions"]) for r in got),
                clicks=sum(int(r["clicks"]) for r in got),
            )
            for name, got in per_variant.items()
        ]
        stats = analyse(outcomes, control=experiment.control, alpha=alpha)
        return ExperimentReport(experiment, end, stats, several)


# -- serving ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Assignment:
    experiment_id: str
    variant: str


def apply_ranking(
    weights: Mapping[str, RankingWeights],
    surfaces: Sequence[str],
    ranking: Mapping[str, float | int | None],
) -> dict[str, RankingWeights]:
    """`weights` with `ranking` applied over the named surfaces."""
    out = dict(weights)
    for surface in surfaces:
        out[surface] = replace(out[surface], **ranking)  # type: ignore[arg-type]
    return out


class ExperimentRouter:
    """The API's view of running experiments: which engine serves a customer on a surface.

    `refresh(snapshot)` (the serving thread, before a new snapshot is swapped in, and on every
    turn) reads the running experiments and loads the vectors of model-version variants for that
    snapshot; `route` only looks things up. A variant's engine shares the snapshot's arrays and
    swaps in its version's vectors (products x dims + customers x dims floats per version: 13 MB
    for 50k customers and 10k products at 64 dimensions).
    """

    def __init__(self, store: ExperimentStore) -> None:
        self.store = store
        self._by_surface: dict[str, Experiment] = {}
        self._promoted: list[tuple[tuple[str, ...], dict[str, float | int | None]]] = []
        # version -> [(snapshot, product vectors, customer vectors)], the last two snapshots
        self._vectors: dict[str, list[tuple[ServingSnapshot, np.ndarray, np.ndarray]]] = {}
        self._engines: dict[tuple[str, str], tuple[Engine, tuple[object, ...]]] = {}
        self._broken: dict[str, str] = {}  # experiment id -> why it is not served
        self._lock = threading.Lock()

    @property
    def running(self) -> list[Experiment]:
        return list({e.experiment_id: e for e in self._by_surface.values()}.values())

    @property
    def broken(self) -> dict[str, str]:
        return dict(self._broken)

    def refresh(self, snapshot: ServingSnapshot) -> None:
        """Re-reads experiments and promoted ranking; loads missing vectors for `snapshot`.

        Raises:
            neo4j errors when the graph cannot be read (the previous view stays).
        """
        running = self.store.running()
        promoted = self.store.promoted_ranking()
        needed = sorted({v.model_version for e in running for v in e.variants if v.model_version})
        missing = [
            version
            for version in needed
            if not any(entry[0] is snapshot for entry in self._vectors.get(version, []))
        ]
        info = self.store.model_versions(missing) if missing else {}
        loaded: dict[str, tuple[ServingSnapshot, np.ndarray, np.ndarray]] = {}
        failed: dict[str, str] = {}
        for version in missing:
            artifacts = info.get(version, {}).get("artifacts")
            try:
                if not artifacts:
                    raise FileNotFoundError(f"model version {version} has no artifacts folder")
                products, customers = _vectors(
                    Path(artifacts), snapshot.product_ids, list(snapshot.customer_index)
                )
            except (OSError, KeyError, ValueError) as exc:
                failed[version] = f"{type(exc).__name__}: {exc}"
                continue
            loaded[version] = (snapshot, products, customers)
        with self._lock:
            for version, entry in loaded.items():
                self._vectors[version] = [*self._vectors.get(version, [])[-1:], entry]
            for version in list(self._vectors):
                if version not in needed:
                    del self._vectors[version]
            broken = {}
            for experiment in running:
                bad = [
                    f"{v.name}: {failed[v.model_version]}"
                    for v in experiment.variants
                    if v.model_version in failed
                ]
                if bad:
                    broken[experiment.experiment_id] = "; ".join(bad)
                    logger.error(
                        "experiment %s is not served (control for everyone, nothing recorded): %s",
                        experiment.experiment_id,
                        broken[experiment.experiment_id],
                    )
            self._broken = broken
            self._by_surface = {
                s: e for e in running if e.experiment_id not in broken for s in e.surfaces
            }
            self._promoted = promoted
            live = {e.experiment_id for e in running}
            self._engines = {k: v for k, v in self._engines.items() if k[0] in live}

    def weights(self, base: Mapping[str, RankingWeights]) -> dict[str, RankingWeights]:
        """The serving weights: `base` (defaults and settings) with promoted rankings applied
        in promotion order."""
        out = dict(base)
        for surfaces, ranking in self._promoted:
            out = apply_ranking(out, surfaces, ranking)
        return out

    def route(
        self, main: Engine, customer_id: str | None, surface: str
    ) -> tuple[Engine, Assignment | None]:
        """The engine for this customer's list, and their assignment when an experiment runs on
        the surface. Without a customer, or while a new snapshot's vectors are not loaded yet
        (a moment during a reload), the list is the main engine's and not part of the
        experiment."""
        experiment = self._by_surface.get(surface)
        if experiment is None or not customer_id:
            return main, None
        variant = assign(experiment.experiment_id, customer_id, experiment.variants)
        assignment = Assignment(experiment.experiment_id, variant.name)
        if not variant.changes_serving:
            return main, assignment
        engine = self._engine_for(main, experiment, variant)
        return (main, None) if engine is None else (engine, assignment)

    def _engine_for(self, main: Engine, experiment: Experiment, variant: Variant) -> Engine | None:
        snapshot = main.snapshot
        key = (experiment.experiment_id, variant.name)
        # What the variant engine was built from: rebuilt when any of it changes.
        basis: tuple[object, ...] = (snapshot, main.rules, main.surfaces)
        cached = self._engines.get(key)
        if cached is not None and all(a is b for a, b in zip(cached[1], basis, strict=True)):
            return cached[0]
        variant_snapshot = snapshot
        if variant.model_version:
            entry = next(
                (e for e in self._vectors.get(variant.model_version, []) if e[0] is snapshot),
                None,
            )
            if entry is None:
                return None
            variant_snapshot = replace(
                snapshot,
                version_id=variant.model_version,
                product_vectors=entry[1],
                customer_vectors=entry[2],
            )
        weights = main.surfaces
        if variant.ranking:
            weights = apply_ranking(weights, experiment.surfaces, variant.ranking)
        engine = Engine(
            variant_snapshot,
            weights,
            rules=main.rules,
            allow_repurchase=main.allow_repurchase,
            repurchase_window_days=main.repurchase_window_days,
            clock=main.clock,
        )
        with self._lock:
            self._engines[key] = (engine, basis)
        return engine
