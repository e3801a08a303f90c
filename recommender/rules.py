"""Merchandising rules kept in the graph (`MerchandisingRule` nodes), each change audited.

The engine holds the rules in memory (`Engine.set_rules`); the API reloads them from here after
every change, so a new rule applies to the next request.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import neo4j
from pydantic import BaseModel, ConfigDict, Field, model_validator

from graph.cypher import load_cypher
from recommender.engine import SURFACES, Rule


class RuleNotFound(LookupError):
    """No rule with this id."""


class RuleSpec(BaseModel):
    """A rule as a merchandiser writes it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "boost", "target_kind": "brand", "target_id": "acme", "weight": 0.2},
                {
                    "action": "pin",
                    "target_kind": "product",
                    "target_id": "P42",
                    "position": 1,
                    "surface": "home",
                    "note": "launch week",
                },
                {
                    "action": "exclude",
                    "target_kind": "category",
                    "target_id": "C7",
                    "segment": "b2b",
                },
            ]
        },
    )

    action: Literal["pin", "boost", "bury", "exclude"] = Field(
        description="pin: show at `position`; boost/bury: add/subtract `weight`; exclude: never."
    )
    target_kind: Literal["product", "category", "brand"] = Field(
        description="What the rule applies to; a category reaches its subcategories."
    )
    target_id: str = Field(min_length=1, max_length=200)
    surface: Literal["home", "product", "cart", "email"] | None = Field(
        None, description="Only on this surface; all surfaces when absent."
    )
    segment: str | None = Field(
        None, max_length=200, description="Only for customers of this segment."
    )
    weight: float | None = Field(
        None, gt=0, le=5, description="Size of a boost or bury (relevance is 0 to 1)."
    )
    position: int = Field(1, ge=1, le=100, description="Where a pinned product goes (1 = top).")
    note: str = Field("", max_length=500, description="Why the rule exists, for the audit trail.")

    @model_validator(mode="after")
    def _consistent(self) -> RuleSpec:
        if self.action == "pin" and self.target_kind != "product":
            raise ValueError("only a product can be pinned (target_kind must be 'product')")
        if self.weight is not None and self.action not in ("boost", "bury"):
            raise ValueError("weight applies to boost and bury rules only")
        return self


assert set(SURFACES) == {"home", "product", "cart", "email"}  # RuleSpec.surface mirrors it


class RuleStore:
    """Rules in Neo4j; creating and deleting one writes an `AuditEvent`."""

    def __init__(self, driver: neo4j.Driver, *, database: str) -> None:
        self.driver = driver
        self.database = database

    def list(self) -> list[Rule]:
        records, _, _ = self.driver.execute_query(
            load_cypher("recommender", "rules_list"),
            routing_=neo4j.RoutingControl.READ,
            database_=self.database,
        )
        return [_rule(dict(r["rule"])) for r in records]

    def create(self, spec: RuleSpec, *, actor: str) -> Rule:
        rule_id = "R" + uuid.uuid4().hex[:10]
        props: dict[str, Any] = {**spec.model_dump(), "rule_id": rule_id}
        self.driver.execute_query(
            load_cypher("recommender", "rules_create"),
            rule=props,
            actor=actor,
            now=datetime.now(UTC).isoformat(),
            event_id=uuid.uuid4().hex,
            database_=self.database,
        )
        return _rule(props)

    def delete(self, rule_id: str, *, actor: str) -> Rule:
        """Raises:
        RuleNotFound: no rule with this id.
        """
        records, _, _ = self.driver.execute_query(
            load_cypher("recommender", "rules_delete"),
            rule_id=rule_id,
            actor=actor,
            now=datetime.now(UTC).isoformat(),
            event_id=uuid.uuid4().hex,
            database_=self.database,
        )
        if not records:
            raise RuleNotFound(f"no merchandising rule {rule_id!r}")
        return _rule(dict(records[0]["rule"]))


def _rule(props: dict[str, Any]) -> Rule:
    return Rule(
        rule_id=props["rule_id"],
        action=props["action"],
        target_kind=props["target_kind"],
        target_id=props["target_id"],
        surface=props.get("surface"),
        segment=props.get("segment"),
        weight=props.get("weight"),
        position=int(props.get("position") or 1),
        note=props.get("note") or "",
    )
