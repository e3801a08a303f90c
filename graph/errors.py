"""The project's exceptions: raised at the boundaries, each with a message a person can act on."""

from __future__ import annotations


class KgrecError(Exception):
    """Base of every error kgrec raises on purpose; the CLI prints these without a traceback."""


class ConfigurationError(KgrecError):
    """A setting is missing, malformed or unsafe for the chosen environment."""


class GraphUnavailable(KgrecError):
    """Neo4j cannot be reached, or refused our credentials."""


class LocalNeo4jError(KgrecError):
    """The project-managed local Neo4j could not be built, started or stopped."""


class SchemaError(KgrecError):
    """The graph schema could not be applied, or the graph holds a conflicting one."""


class ValidationFailed(KgrecError):
    """Input data broke the format; the message names file, line, column and reason."""
