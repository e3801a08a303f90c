"""JSON request bodies are checked once, at the edge, for what Python's JSON reader lets through
but nothing behind the API can take:

* a lone UTF-16 surrogate (`"\\udb91"` escapes decode to a `str` that has no UTF-8 form): the
  Neo4j driver fails to encode it (a 500), and an event carrying one would be accepted into the
  event log and then fail to ship;
* an integer outside 64 bits (Neo4j's integer): the driver raises OverflowError.

Such a body is answered 422 naming the field (`body.0.customer_id`) before any route runs, so
every route, including ones added later, is covered. The check costs one regex scan of the body;
the body is parsed only when the scan finds a surrogate escape or a number of 19 digits or more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import body as error_body

#: A surrogate escape (`\uD800`-`\uDFFF`) or a long digit run: the only ways to the problems.
SUSPECT = re.compile(rb"\\u[dD][89a-fA-F]|[0-9]{19}")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
METHODS = {"POST", "PUT", "PATCH"}


def problems(value: Any, location: str = "body") -> Iterator[dict[str, Any]]:
    """Each string, key or integer of a parsed JSON value that cannot go further, as a field
    error (`location`, `value`, `reason`) in the shape of the API's 422 answers."""
    if isinstance(value, str):
        if not _encodable(value):
            yield {
                "location": location,
                "value": _printable(value),
                "reason": "not valid Unicode: it holds a lone UTF-16 surrogate; send UTF-8 text "
                "(a character outside the BMP as a surrogate pair, or as itself)",
            }
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            yield {
                "location": location,
                "value": str(value)[:40],
                "reason": "integer out of range: at most 64 bits (-2^63 to 2^63-1)",
            }
    elif isinstance(value, dict):
        for key, item in value.items():
            if not _encodable(key):
                yield {
                    "location": location,
                    "value": _printable(key),
                    "reason": "a key is not valid Unicode: it holds a lone UTF-16 surrogate",
                }
                continue
            yield from problems(item, f"{location}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from problems(item, f"{location}.{index}")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    return text[:200].encode("utf-8", errors="backslashreplace").decode("ascii", errors="replace")


class JsonGuard:
    """Pure ASGI middleware (no per-request task or response wrapping): buffers the body of a
    POST, PUT or PATCH, answers 422 when it holds what `problems` finds, else hands the same
    bytes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before the body ended: let the app see it as it is.
                await self.app(scope, _replay([], message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        data = b"".join(chunks)
        found = _check(data) if SUSPECT.search(data) else []
        if found:
            detail = "; ".join(f"{f['location']}: {f['reason']}" for f in found[:10])
            response = JSONResponse(status_code=422, content=error_body(422, detail, found[:100]))
            await response(scope, receive, send)
            return
        await self.app(scope, _replay([data], None, receive), send)


def _check(data: bytes) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(data)
    except ValueError:
        return []  # not JSON: the route's own parsing says so
    return list(problems(parsed))


def _replay(chunks: list[bytes], last: Message | None, receive: Receive) -> Receive:
    """A `receive` that gives the buffered body first, then whatever the client sends next."""
    pending: list[Message] = (
        [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
        if last is None
        else [last]
    )

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
