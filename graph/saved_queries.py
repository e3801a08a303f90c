"""Analysts' Cypher: the saved queries in `cypher/` and ad-hoc ones, always read-only.

A saved query is a `.cypher` file whose first lines are a header, one `// key: value` per line:

    // name: top_copurchased_pairs
    // description: Products bought together most often, per category.
    // param: k = 10 (integer) - pairs per category
    // example: kgrec cypher run top_copurchased_pairs --param k=5

`name` (the file's stem), `description` and `example` once each, `param` once per `$parameter`
the body uses (types: integer, float, string, boolean, string_list). A line `//    more` (two or
more spaces) continues the line above; a bare `//` is ignored.

Read-only does not rest on string matching alone. Every query runs in an explicit transaction
opened in READ access mode, so Neo4j itself refuses any write (Neo.ClientError.Statement.
AccessMode). Before that, an ad-hoc query is checked twice for what a read transaction would still
let through or that we do not want analysts to run: a deny-list of clauses and procedures
(`LOAD CSV` reads files, `CALL dbms.*`, `apoc.periodic.*`, `SHOW`, `USE`, `IN TRANSACTIONS`, ...)
over the text with comments and string literals removed, and `EXPLAIN`, whose plan must be a
read (`query_type` "r") that calls no denied procedure.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import neo4j
from neo4j.exceptions import ClientError, Neo4jError

from graph.errors import KgrecError
from graph.settings import REPOSITORY_ROOT

#: Where the saved queries live (a folder, not a package: analysts add files, no Python).
SAVED_QUERIES_DIR = REPOSITORY_ROOT / "cypher"

ParamType = Literal["integer", "float", "string", "boolean", "string_list"]
PARAM_TYPES: tuple[ParamType, ...] = ("integer", "float", "string", "boolean", "string_list")

_HEADER_LINE = re.compile(r"^//\s?(?P<key>[a-z_]+):\s*(?P<value>.*)$")
_PARAM = re.compile(
    r"^(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<default>.+?)\s*\((?P<type>[a-z_]+)\)"
    r"\s*(?:(?:\u2014|\u2013|-)+\s*(?P<help>.*))?$"
)
_PARAM_REF = re.compile(r"\$(?:(?P<plain>[A-Za-z_]\w*)|`(?P<quoted>[^`]+)`)")

# -- what a read transaction may still allow, or what analysts must not run -----------------------
_DENIED_CLAUSES = [
    (r"\bCREATE\b", "CREATE writes"),
    (r"\bMERGE\b", "MERGE writes"),
    (r"(?<!\.)\bSET\b", "SET writes"),
    (r"\bDELETE\b", "DELETE writes"),
    (r"\bDETACH\b", "DETACH DELETE writes"),
    (r"(?<!\.)\bREMOVE\b", "REMOVE writes"),
    (r"\bFOREACH\b", "FOREACH is only for writes"),
    (r"\bLOAD\s+CSV\b", "LOAD CSV reads files on the database server"),
    (r"\bIN\s+(?:\d+\s+)?(?:CONCURRENT\s+)?TRANSACTIONS\b", "CALL { } IN TRANSACTIONS commits"),
    (r"\bDROP\b", "DROP is a schema or admin command"),
    (r"\bALTER\b", "ALTER is an admin command"),
    (r"\bGRANT\b|\bREVOKE\b|\bDENY\b", "privileges are admin commands"),
    (r"^\s*SHOW\b|\bSHOW\s+\w+", "SHOW commands are admin commands"),
    (r"\bTERMINATE\b", "TERMINATE is an admin command"),
    (r"\b(?:START|STOP|ENABLE|DEALLOCATE|REALLOCATE)\s+(?:DATABASE|SERVER)", "admin command"),
    (
        r"^\s*USE\b|(?<!\.)\bUSE\s+[\w`.]+\s",
        "USE switches databases; queries run on the shop's graph",
    ),
]
_DENIED_CLAUSE_PATTERNS = [(re.compile(p, re.IGNORECASE), why) for p, why in _DENIED_CLAUSES]

#: Procedures and functions refused wherever they appear (prefix match, case-insensitive):
#: writes, file access, nested Cypher (which would escape the checks), admin.
DENIED_PROCEDURE_PREFIXES = (
    "dbms.",
    "db.create",
    "db.index.fulltext.create",
    "db.clearquerycaches",
    "db.checkpoint",
    "apoc.periodic.",
    "apoc.create.",
    "apoc.merge.",
    "apoc.refactor.",
    "apoc.nodes.delete",
    "apoc.nodes.link",
    "apoc.atomic.",
    "apoc.lock.",
    "apoc.trigger.",
    "apoc.schema.",
    "apoc.cypher.",
    "apoc.do.",
    "apoc.load.",
    "apoc.import.",
    "apoc.export.",
    "apoc.systemdb.",
    "apoc.util.sleep",
    "apoc.log.",
    "apoc.uuid.",
    "apoc.ttl.",
    "apoc.graph.fromcypher",
    "gds.",
)
_QUALIFIED_NAME = re.compile(r"\b([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)+)")
# A function call (name followed by a parenthesis) or a procedure after CALL (parentheses are
# optional there); a property access such as `p.name` is neither.
_CALLED_NAME = re.compile(
    r"\bCALL\s+([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)+)"
    r"|\b([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)+)\s*\(",
    re.IGNORECASE,
)


class QueryRefused(KgrecError):
    """The query would write, read files, change the schema or administer the server."""


class QueryInvalid(KgrecError):
    """The query or its parameters are wrong: a syntax error, an unknown or missing parameter."""


class QueryTimedOut(KgrecError):
    """The query ran past the timeout (`KGREC_CYPHER_TIMEOUT_S`) and was stopped."""


class SavedQueryNotFound(KgrecError):
    """No saved query has this name."""


class SavedQueryMalformed(KgrecError):
    """A saved query file's header is malformed; the message names file and line."""


@dataclass(frozen=True)
class QueryParam:
    """A declared parameter: name, type, default (already coerced) and what it means."""

    name: str
    type: ParamType
    default: Any
    help: str = ""


@dataclass(frozen=True)
class SavedQuery:
    """One file of `cypher/`: its header and its Cypher body."""

    name: str
    description: str
    example: str
    params: tuple[QueryParam, ...]
    text: str
    path: Path

    def param(self, name: str) -> QueryParam | None:
        return next((p for p in self.params if p.name == name), None)

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by `given` (strings are coerced by declared type)."""
        unknown = sorted(set(given) - {p.name for p in self.params})
        if unknown:
            declared = ", ".join(p.name for p in self.params) or "none"
            raise QueryInvalid(
                f"{self.name} has no parameter {', '.join(unknown)}; its parameters: {declared}"
            )
        out = {p.name: p.default for p in self.params}
        for name, value in given.items():
            declared_param = self.param(name)
            assert declared_param is not None
            out[name] = coerce(declared_param, value)
        return out


@dataclass
class QueryResult:
    """Columns and rows of a read, capped at `max_rows` (`truncated` says more rows existed)."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: float

    @property
    def row_count(self) -> int:
        return len(self.rows)


# -- parameters -----------------------------------------------------------------------------------
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def coerce(param: QueryParam, value: Any) -> Any:
    """`value` as the parameter's type; a string from the command line is parsed.

    Raises:
        QueryInvalid: naming the parameter, its type and the value.
    """
    kind = param.type
    problem = f"parameter {param.name} must be {_article(kind)} {kind}, got {value!r}"
    if value is None:
        return None
    if kind == "string":
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        raise QueryInvalid(problem)
    if kind == "string_list":
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise QueryInvalid(problem + " (comma-separated, e.g. a,b)")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise QueryInvalid(problem + " (true or false)")
    if isinstance(value, bool):
        raise QueryInvalid(problem)
    try:
        if kind == "integer":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        return float(value)
    except (TypeError, ValueError):
        raise QueryInvalid(problem) from None


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def parse_param_assignments(pairs: Sequence[str]) -> dict[str, str]:
    """`["k=5", "since=2024-01-01"]` as a dict; a pair without `=` is an error naming it."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise QueryInvalid(f"--param {pair!r} is not NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


# -- saved queries --------------------------------------------------------------------------------
def parse_saved_query(path: Path) -> SavedQuery:
    """The header and body of one saved query file.

    Raises:
        SavedQueryMalformed: naming the file, the line and what is wrong.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    fields: dict[str, str] = {}
    params: list[tuple[int, str]] = []
    last: tuple[str, int] | None = None  # (key, index into params when a param) for continuations
    body_start = len(lines)

    def fail(number: int, reason: str) -> SavedQueryMalformed:
        return SavedQueryMalformed(f"{path}:{number}: {reason}")

    for index, raw in enumerate(lines):
        number = index + 1
        line = raw.rstrip()
        if not line.startswith("//"):
            body_start = index
            break
        if line.strip() == "//":
            continue
        if re.match(r"^//\s{2,}\S", line) and last is not None:
            key, at = last
            if key == "param":
                params[at] = (params[at][0], params[at][1] + " " + line[2:].strip())
            else:
                fields[key] += " " + line[2:].strip()
            continue
        match = _HEADER_LINE.match(line)
        if match is None:
            raise fail(
                number, "expected '// key: value' with key name, description, param or example"
            )
        key, value = match["key"], match["value"].strip()
        if key not in {"name", "description", "param", "example"}:
            raise fail(
                number, f"unknown header key {key!r}; keys: name, description, param, example"
            )
        if not value:
            raise fail(number, f"{key} is empty")
        if key == "param":
            params.append((number, value))
            last = ("param", len(params) - 1)
        else:
            if key in fields:
                raise fail(number, f"{key} is given twice")
            fields[key] = value
            last = (key, -1)
    for key in ("name", "description", "example"):
        if key not in fields:
            raise fail(1, f"the header has no '// {key}: ...' line")
    if fields["name"] != path.stem:
        raise fail(1, f"name {fields['name']!r} must be the file name {path.stem!r}")
    declared: list[QueryParam] = []
    for number, spec in params:
        match = _PARAM.match(spec)
        if match is None:
            raise fail(number, f"param {spec!r} is not 'NAME = DEFAULT (TYPE) - what it means'")
        kind = match["type"]
        if kind not in PARAM_TYPES:
            raise fail(number, f"param {match['name']}: type {kind!r} is not one of {PARAM_TYPES}")
        if any(p.name == match["name"] for p in declared):
            raise fail(number, f"param {match['name']} is declared twice")
        shell = QueryParam(match["name"], kind, None, (match["help"] or "").strip())
        default_text = match["default"].strip().strip("'\"")
        try:
            default = None if default_text == "null" else coerce(shell, default_text)
        except QueryInvalid as exc:
            raise fail(number, f"default: {exc}") from None
        declared.append(QueryParam(shell.name, shell.type, default, shell.help))
    text = "\n".join(lines[body_start:]).strip().rstrip(";").strip()
    if not text:
        raise fail(len(lines), "the file has a header but no query")
    used = {m["plain"] or m["quoted"] for m in _PARAM_REF.finditer(_strip_literals(text))}
    names = {p.name for p in declared}
    if used - names:
        raise fail(1, f"the query uses undeclared parameter(s) {', '.join(sorted(used - names))}")
    if names - used:
        raise fail(1, f"declared parameter(s) {', '.join(sorted(names - used))} are not used")
    return SavedQuery(
        name=fields["name"],
        description=fields["description"],
        example=fields["example"],
        params=tuple(declared),
        text=text,
        path=path,
    )


def list_saved_queries(folder: Path = SAVED_QUERIES_DIR) -> list[SavedQuery]:
    """Every saved query of `folder`, by name; one malformed file fails the whole listing."""
    return [parse_saved_query(path) for path in sorted(folder.glob("*.cypher"))]


def get_saved_query(name: str, folder: Path = SAVED_QUERIES_DIR) -> SavedQuery:
    """The saved query `name`; SavedQueryNotFound lists the names there are."""
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name) or not (folder / f"{name}.cypher").is_file():
        known = ", ".join(q.name for q in list_saved_queries(folder))
        raise SavedQueryNotFound(f"no saved query {name!r}; saved queries: {known}")
    return parse_saved_query(folder / f"{name}.cypher")


# -- the read-only check --------------------------------------------------------------------------
def _strip_literals(text: str) -> str:
    """`text` with comments and string literals blanked, so that e.g. 'SET' in a string or a
    `// DELETE` comment neither refuses a query nor hides anything. Backticked names are kept
    as plain words, so a `CREATE` in backticks still counts."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
        elif ch in "'\"":
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" else 1
            out.append(" '' ")
            i = j + 1
        elif ch == "`":
            j = text.find("`", i + 1)
            j = n if j < 0 else j
            out.append(" " + text[i + 1 : j] + " ")
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def denied_procedure(name: str) -> bool:
    """Whether a procedure or function name is on the deny-list."""
    lowered = re.sub(r"\s+", "", name).lower()
    return any(lowered.startswith(prefix) for prefix in DENIED_PROCEDURE_PREFIXES)


def check_text(text: str) -> None:
    """Refuses clauses and procedures a read-only analyst query must not use.

    Raises:
        QueryRefused: naming what was found and why.
    """
    stripped = _strip_literals(text)
    if not stripped.strip():
        raise QueryInvalid("the query is empty")
    for pattern, why in _DENIED_CLAUSE_PATTERNS:
        found = pattern.search(stripped)
        if found:
            raise QueryRefused(
                f"refused: {found.group(0).strip()!r} ({why}); analysts' Cypher is read-only"
            )
    for found in _CALLED_NAME.finditer(stripped):
        name = found.group(1) or found.group(2)
        if denied_procedure(name):
            raise QueryRefused(
                f"refused: {name} (writes, reads files, runs nested Cypher or "
                "administers the server); analysts' Cypher is read-only"
            )


def _plan_procedures(plan: Mapping[str, Any] | None) -> list[str]:
    """Procedure names called anywhere in an EXPLAIN plan."""
    if not plan:
        return []
    names: list[str] = []
    details = str(plan.get("args", {}).get("Details", ""))
    if "ProcedureCall" in str(plan.get("operatorType", "")):
        names.extend(_QUALIFIED_NAME.findall(details))
    for child in plan.get("children", []):
        names.extend(_plan_procedures(child))
    return names


def check_plan(session: neo4j.Session, text: str, params: Mapping[str, Any]) -> None:
    """`EXPLAIN` (nothing runs): the plan must be a read and call no denied procedure."""
    try:
        summary = session.run(f"EXPLAIN {text}", dict(params)).consume()
    except ClientError as exc:
        raise _translate(exc) from exc
    if summary.query_type not in (None, "r"):
        raise QueryRefused(
            f"refused: the plan of this query writes (query type {summary.query_type!r}); "
            "analysts' Cypher is read-only"
        )
    for name in _plan_procedures(summary.plan):
        if denied_procedure(name):
            raise QueryRefused(f"refused: the plan calls {name}; analysts' Cypher is read-only")


def _translate(exc: Neo4jError) -> KgrecError:
    code = exc.code or ""
    message = exc.message or str(exc)
    if "TransactionTimedOut" in code or "Transaction.Terminated" in code:
        return QueryTimedOut(f"the query ran past the timeout and was stopped ({message})")
    if "AccessMode" in code or "Forbidden" in code or "Security" in code:
        return QueryRefused(f"refused by Neo4j: {message}; analysts' Cypher is read-only")
    return QueryInvalid(f"{code.rsplit('.', 1)[-1] or 'Cypher error'}: {message}")


# -- running --------------------------------------------------------------------------------------
def to_json_value(value: Any) -> Any:
    """A value Neo4j returned as JSON-ready data: nodes, relationships and paths as maps,
    temporal values as ISO strings."""
    if isinstance(value, neo4j.graph.Node):
        return {"labels": sorted(value.labels), "properties": to_json_value(dict(value))}
    if isinstance(value, neo4j.graph.Relationship):
        return {"type": value.type, "properties": to_json_value(dict(value))}
    if isinstance(value, neo4j.graph.Path):
        return {
            "nodes": [to_json_value(n) for n in value.nodes],
            "relationships": [to_json_value(r) for r in value.relationships],
        }
    iso = getattr(value, "iso_format", None)
    if callable(iso):  # dates, times, durations (a Duration is a tuple: before the lists)
        return iso()
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity: "nan", "inf", "-inf"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def run_read(
    driver: neo4j.Driver,
    text: str,
    params: Mapping[str, Any],
    *,
    database: str,
    timeout_s: float,
    max_rows: int,
    check: bool = True,
) -> QueryResult:
    """Runs `text` in a READ transaction with a timeout, keeping at most `max_rows` rows.

    An explicit transaction, not `execute_read`: an analyst's query must not be retried, and
    a timed-out one must surface as such. `check` adds the text and EXPLAIN checks.

    Raises:
        QueryRefused, QueryInvalid, QueryTimedOut.
    """
    if check:
        check_text(text)
    started = time.perf_counter()
    with driver.session(database=database, default_access_mode=neo4j.READ_ACCESS) as session:
        if check:
            check_plan(session, text, params)
        try:
            with session.begin_transaction(timeout=timeout_s) as tx:
                result = tx.run(text, dict(params))
                columns = list(result.keys())
                rows: list[list[Any]] = []
                truncated = False
                for record in result:
                    if len(rows) >= max_rows:
                        truncated = True
                        break
                    rows.append([to_json_value(v) for v in record.values()])
                tx.rollback()  # nothing to keep; a read never commits
        except Neo4jError as exc:
            raise _translate(exc) from exc
    elapsed_ms = (time.perf_counter() - started) * 1000
    return QueryResult(columns, rows, truncated, round(elapsed_ms, 1))


def run_saved(
    driver: neo4j.Driver,
    name: str,
    params: Mapping[str, Any],
    *,
    database: str,
    timeout_s: float,
    max_rows: int,
    folder: Path = SAVED_QUERIES_DIR,
) -> QueryResult:
    """Runs a saved query by name with its defaults overridden by `params` (coerced by type)."""
    query = get_saved_query(name, folder)
    return run_read(
        driver,
        query.text,
        query.resolve(params),
        database=database,
        timeout_s=timeout_s,
        max_rows=max_rows,
    )


def run_adhoc(
    driver: neo4j.Driver,
    text: str,
    params: Mapping[str, Any] | None = None,
    *,
    database: str,
    timeout_s: float,
    max_rows: int,
) -> QueryResult:
    """Runs an analyst's own query: deny-list, EXPLAIN check, then a READ transaction."""
    return run_read(
        driver,
        text,
        params or {},
        database=database,
        timeout_s=timeout_s,
        max_rows=max_rows,
    )
