"""One `neo4j.Driver` per process: opened by the CLI or the API lifespan, handed to stores."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import neo4j
from neo4j.exceptions import AuthError, DriverError, Neo4jError, ServiceUnavailable

from graph.errors import GraphUnavailable
from graph.settings import Neo4jSettings


def unreachable_message(settings: Neo4jSettings, reason: object) -> str:
    """Says which server could not be reached and what the user can do about it."""
    if settings.is_managed_locally:
        remedy = (
            "Start the local server with `kgrec neo4j start` (or `make demo`), "
            "or point NEO4J_URI at a running server."
        )
    else:
        remedy = (
            "Check that the server is running and reachable from here, "
            "or correct NEO4J_URI (unset it to use the local server kgrec manages)."
        )
    return f"Cannot reach Neo4j at {settings.uri}: {reason}. {remedy}"


def open_driver(settings: Neo4jSettings, *, verify: bool = True) -> neo4j.Driver:
    """Opens a driver for the configured server; with `verify`, fails fast if it is unusable.

    Raises:
        GraphUnavailable: the server is unreachable or refuses the credentials.
    """
    auth = (settings.user, settings.password.get_secret_value()) if settings.auth_enabled else None
    driver = neo4j.GraphDatabase.driver(
        settings.uri,
        auth=auth,
        connection_timeout=settings.connection_timeout_s,
        # "Relationship type VIEWED does not exist" on a new graph is expected, not a problem.
        notifications_disabled_classifications=[
            neo4j.NotificationDisabledClassification.UNRECOGNIZED
        ],
    )
    if verify:
        try:
            driver.verify_connectivity()
        except AuthError as exc:
            driver.close()
            raise GraphUnavailable(
                f"Neo4j at {settings.uri} refused user {settings.user!r}: {exc.message}. "
                "Check NEO4J_USER and NEO4J_PASSWORD."
            ) from exc
        except (ServiceUnavailable, DriverError, Neo4jError, OSError) as exc:
            driver.close()
            raise GraphUnavailable(unreachable_message(settings, exc)) from exc
    return driver


@contextmanager
def driver_scope(settings: Neo4jSettings) -> Iterator[neo4j.Driver]:
    """A verified driver that is closed when the block ends."""
    driver = open_driver(settings)
    try:
        yield driver
    finally:
        driver.close()
