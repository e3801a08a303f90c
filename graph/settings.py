"""Settings for the whole process, read once from the environment (and a `.env` file).

Each group has its own prefix: `KGREC_` for the application, `NEO4J_` for the graph
database. `get_settings()` builds them once and checks that they are safe together
(no development password and no disabled authentication outside their environments).
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from graph.errors import ConfigurationError

#: The password `make demo` uses out of the box. Refused outside development.
DEVELOPMENT_PASSWORD = "kgrec-development-only"

#: Where the repository keeps the Maven build of the local Neo4j launcher.
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_MEMORY_SIZE = re.compile(r"^\d+[kmgKMG]$")


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class AppSettings(BaseSettings):
    """Application-wide settings (`KGREC_*`)."""

    model_config = SettingsConfigDict(env_prefix="KGREC_", env_file=".env", extra="ignore")

    environment: Environment = Field(
        Environment.development,
        description="development, test or production; production refuses unsafe defaults.",
    )
    home: Path = Field(
        Path(".kgrec"),
        description="State folder: local Neo4j data and logs, model artifacts, event logs.",
    )
    events_dir: Path | None = Field(
        None,
        description="Folder of the storefront event log (segments, dead letters); "
        "default KGREC_HOME/events.",
    )
    embedding_dimensions: int = Field(
        128, ge=8, le=4096, description="Size of product and customer embeddings (vector indexes)."
    )
    activation_margin: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Relative validation NDCG@10 gain a model needs over the active one to be "
        "activated.",
    )
    allow_repurchase: bool = Field(
        False,
        description="Recommend (and evaluate on) products a customer already bought.",
    )
    repurchase_window_days: float | None = Field(
        None,
        gt=0,
        description="Offer a bought product again this many days after the purchase "
        "(consumables); never when unset.",
    )
    surface_weights: dict[str, dict[str, float | int | None]] = Field(
        default_factory=dict,
        description="Ranking weights per surface over the defaults, as JSON, e.g. "
        '{"email": {"stockout": 0.5, "max_per_category": 2}}.',
    )
    snapshot_refresh_s: float = Field(
        30.0,
        gt=0,
        description="How often the API checks for a new active model or changed facts and "
        "swaps in a new serving snapshot.",
    )
    explanation_paths: int = Field(
        3, ge=0, le=10, description="Paths per recommended item unless a request says otherwise."
    )
    explanation_source: Literal["snapshot", "graph"] = Field(
        "snapshot",
        description="Where storefront lists' paths come from: `snapshot`, the serving "
        "snapshot's in-memory path index (no Neo4j round trip per list; as fresh as the "
        "snapshot), or `graph`, one bounded Cypher read per list. Merchandiser explanations and "
        "why-not always read the graph.",
    )
    explanation_timeout_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Deadline of one path read in Neo4j (merchandiser routes, or every list "
        "with `KGREC_EXPLANATION_SOURCE=graph`); past it the answer goes out without paths "
        "(`degraded: true`) and graph path reads pause for 2 s.",
    )
    served_sample_rate: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of customers' served lists written back to the graph as "
        "WAS_RECOMMENDED (0 turns it off).",
    )
    served_max_per_s: float = Field(
        5.0,
        ge=0,
        description="At most this many sampled lists a second, per API process, are written "
        "back (0: no cap). Bounds the graph's write load at peak traffic; experiment traffic is "
        "always written.",
    )
    drift_scores_max_per_s: float = Field(
        50.0,
        ge=0,
        description="At most this many personal lists a second, per API process, add their "
        "customer's model affinities to the served-score drift signal (0: every list). Each "
        "costs a pass over every product's vector; 50 a second keep the signal's window (the "
        "latest 20,000 affinities) about 40 s long at any traffic.",
    )
    validation_days: int = Field(
        28, ge=1, description="Latest days of orders held out to stop training and gate models."
    )
    api_key_refresh_s: float = Field(
        30.0,
        gt=0,
        description="How often the API reloads API keys from Neo4j (a key it does not know "
        "triggers a reload at once).",
    )
    cypher_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Analysts' Cypher (saved and ad hoc): a query running longer is stopped.",
    )
    cypher_max_rows: int = Field(
        10000,
        ge=1,
        le=1_000_000,
        description="Analysts' Cypher: rows returned at most; the answer says when it was "
        "truncated.",
    )
    drift_window_days: int = Field(
        7,
        ge=1,
        le=365,
        description="Drift monitoring: the latest days of orders whose category mix is compared "
        "with the active model's training data.",
    )
    drift_psi_warn: float = Field(
        0.1, gt=0, description="Drift monitoring: PSI from which a signal is `warn`."
    )
    drift_psi_alert: float = Field(
        0.25, gt=0, description="Drift monitoring: PSI from which a signal is `alert`."
    )
    drift_min_observations: int = Field(
        100,
        ge=1,
        description="Drift monitoring: fewer order lines or served scores than this give no PSI "
        "(`insufficient_data`): a handful of observations is noise.",
    )
    event_retention_days: int | None = Field(
        None,
        ge=1,
        description="Retention: `kgrec events prune` (without --older-than) deletes shipped "
        "event-log segments and graph event records older than this many days; unset keeps "
        "them.",
    )
    privacy_key: SecretStr | None = Field(
        None,
        description="Key of the keyed hash (HMAC-SHA256) that erasure receipts name a customer "
        "by; default: a random key kept in KGREC_HOME/privacy.key.",
    )

    @model_validator(mode="after")
    def _drift_thresholds_ordered(self) -> AppSettings:
        if self.drift_psi_alert < self.drift_psi_warn:
            raise ValueError(
                f"KGREC_DRIFT_PSI_ALERT ({self.drift_psi_alert}) must be at least "
                f"KGREC_DRIFT_PSI_WARN ({self.drift_psi_warn})"
            )
        return self


class Neo4jSettings(BaseSettings):
    """How to reach Neo4j (`NEO4J_*`), and how to run the local one when kgrec manages it."""

    model_config = SettingsConfigDict(env_prefix="NEO4J_", env_file=".env", extra="ignore")

    uri: str = Field("bolt://127.0.0.1:7687", description="Bolt URI of the server to use.")
    user: str = Field("neo4j", description="User name.")
    password: SecretStr = Field(
        SecretStr(DEVELOPMENT_PASSWORD), description="Password; must be set outside development."
    )
    database: str = Field("neo4j", description="Database name.")
    auth_enabled: bool = Field(True, description="Authentication; may be off only in tests.")
    managed: Literal["auto", "yes", "no"] = Field(
        "auto",
        description="Whether kgrec runs the server itself; auto: when NEO4J_URI is on loopback.",
    )
    home: Path | None = Field(
        None,
        description="Folder of the local server (data, logs, pid file); default KGREC_HOME/neo4j.",
    )
    heap: str = Field("2g", description="Java heap of the local server (-Xms/-Xmx).")
    pagecache: str = Field("2g", description="Page cache of the local server.")
    start_timeout_s: float = Field(180.0, gt=0, description="How long start waits for Bolt.")
    stop_timeout_s: float = Field(60.0, gt=0, description="How long stop waits before SIGKILL.")
    java: str = Field("java", description="Java 17+ executable for the local server.")
    launcher_dir: Path = Field(
        REPOSITORY_ROOT / "neo4j-local" / "target",
        description="Maven build output of neo4j-local/ (classes, lib/, plugins/).",
    )
    connection_timeout_s: float = Field(5.0, gt=0, description="Bolt connection timeout.")

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        parts = urlsplit(uri)
        schemes = {"bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"}
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(
                f"NEO4J_URI {uri!r} is not a Bolt URI; expected e.g. bolt://127.0.0.1:7687 "
                "or neo4j+s://<id>.databases.neo4j.io"
            )
        return uri

    @field_validator("heap", "pagecache")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        if not _MEMORY_SIZE.match(value):
            raise ValueError(f"{value!r} is not a memory size such as 512m or 2g")
        return value.lower()

    @property
    def host(self) -> str:
        return urlsplit(self.uri).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.uri).port or 7687

    @property
    def is_managed_locally(self) -> bool:
        """True when `kgrec neo4j start` should run the server itself."""
        if self.managed != "auto":
            return self.managed == "yes"
        return self.host in _LOOPBACK_HOSTS and urlsplit(self.uri).scheme in {"bolt", "neo4j"}

    def local_home(self, app_home: Path) -> Path:
        return (self.home or app_home / "neo4j").resolve()


class Settings(BaseModel):
    """Every settings group, checked together."""

    app: AppSettings
    neo4j: Neo4jSettings

    @model_validator(mode="after")
    def _safe_for_environment(self) -> Settings:
        env = self.app.environment
        if not self.neo4j.auth_enabled and env != Environment.test:
            raise ValueError(
                "NEO4J_AUTH_ENABLED=false is allowed only with KGREC_ENVIRONMENT=test "
                f"(environment is {env.value})"
            )
        if (
            self.neo4j.auth_enabled
            and env != Environment.development
            and self.neo4j.password.get_secret_value() == DEVELOPMENT_PASSWORD
        ):
            raise ValueError(
                f"NEO4J_PASSWORD is the development default; set your own password for "
                f"KGREC_ENVIRONMENT={env.value}"
            )
        return self


def load_settings(app: AppSettings | None = None, neo4j: Neo4jSettings | None = None) -> Settings:
    """Builds and checks settings; raises ConfigurationError naming the bad setting."""
    try:
        return Settings(app=app or AppSettings(), neo4j=neo4j or Neo4jSettings())
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ConfigurationError(f"Invalid settings: {exc}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, built once."""
    return load_settings()
