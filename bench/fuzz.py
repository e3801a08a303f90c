"""Benchmark: the long schemathesis run. Every operation of the API's OpenAPI document, as the
running server serves it, with `--examples` generated requests per operation and generation
mode (schema-valid and schema-invalid data), an admin key so requests reach the handlers.
Prints per operation the requests sent, 5xx answers and other failures (a 2xx whose body does
not match the documented schema, a transport error), and writes the failing requests as curl
commands to the JSON report. `tests/api/test_fuzz.py` is the bounded version in `make test`.

The server runs over its own graph (a generated shop of 1,000 customers, its own Neo4j on port
7724, cached under `.kgrec/bench/fuzz/`): the fuzzer writes random rules, catalogue rows and
events, which must not reach the graphs of the other benchmarks.

  .venv/bin/python -m bench.fuzz                          # 500 per operation and mode
  .venv/bin/python -m bench.fuzz --examples 50 --budget-s 120
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import response_schema_conformance

from bench.api_server import Api, serve_env
from bench.serve_latency import PASSWORD, prepare
from graph.driver import open_driver
from graph.keys import KeyStore, Role
from graph.synthetic import ShopSpec

SHOP = ShopSpec(1_000, 200, 120, 3)
NEO4J_PORT = 7724
CHUNK = 25


@dataclass
class OperationFigures:
    label: str
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    other_failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def fuzz_operation(
    operation: Any,
    base: str,
    headers: dict[str, str],
    examples: int,
    seed: int,
    deadline: float,
    session: requests.Session,
) -> OperationFigures:
    figures = OperationFigures(f"{operation.method.upper()} {operation.path}")
    began = time.monotonic()
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    for m, mode in enumerate(modes):
        # Each mode gets its half of the time; hypothesis runs in chunks of CHUNK examples (each
        # with its own seed) so the time budget is checked between chunks.
        mode_deadline = began + (deadline - began) * (m + 1) / len(modes)
        strategy = operation.as_strategy(generation_mode=mode)
        sent = 0
        chunk = 0
        while sent < examples and time.monotonic() < mode_deadline:
            size = min(CHUNK, examples - sent)
            before = figures.requests
            try:
                _chunk(
                    strategy,
                    size,
                    seed * 1_000_003 + m * 10_007 + chunk,
                    figures,
                    base,
                    headers,
                    session,
                )
            except (hypothesis.errors.Unsatisfiable, hypothesis.errors.FailedHealthCheck):
                break  # this mode cannot make a request here (no input to get wrong, say)
            sent += size
            chunk += 1
            if figures.requests == before:
                break  # nothing generated (an operation without inputs, say): no point going on
    figures.seconds = time.monotonic() - began
    return figures


def _chunk(
    strategy: Any,
    size: int,
    seed: int,
    figures: OperationFigures,
    base: str,
    headers: dict[str, str],
    session: requests.Session,
) -> None:
    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=size,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.generate],
        verbosity=hypothesis.Verbosity.quiet,
    )
    @hypothesis.given(strategy)
    def run(case: schemathesis.Case) -> None:
        figures.requests += 1
        try:
            response = case.call(base_url=base, headers=headers, session=session, timeout=60)
        except requests.RequestException as exc:
            figures.other_failures.append(f"{type(exc).__name__}: {case.as_curl_command()}")
            return
        figures.statuses[response.status_code] += 1
        if response.status_code >= 500:
            figures.server_errors.append(
                f"{response.status_code} {response.text[:300]!r}: {case.as_curl_command()}"
            )
        elif response.status_code < 300:
            try:
                case.validate_response(
                    response, checks=[response_schema_conformance], headers=headers
                )
            except AssertionError as exc:
                figures.other_failures.append(
                    f"schema: {str(exc)[:300]!r}: {case.as_curl_command()}"
                )

    run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="Per operation and mode.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--budget-s", type=float, default=540, help="Time for all operations (shared evenly)."
    )
    parser.add_argument("--api-port", type=int, default=8724)
    parser.add_argument("--cache", type=Path, default=Path(".kgrec/bench/fuzz"))
    parser.add_argument("--keep-running", action="store_true", help="Leave Neo4j running.")
    parser.add_argument("--output", type=Path, default=Path(".kgrec/bench/fuzz.json"))
    args = parser.parse_args()
    local, settings = prepare(args.cache, NEO4J_PORT, SHOP)
    with open_driver(settings) as driver:
        key = KeyStore(driver, database="neo4j").create(Role.admin, "fuzz")[1]
    home = (args.cache / "serve" / "home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = serve_env(settings, PASSWORD, home)
    api = Api(args.api_port, 1, env, home / "api.log")
    report: dict[str, Any] = {"examples per operation and mode": args.examples, "seed": args.seed}
    figures: list[OperationFigures] = []
    try:
        api.start()
        api.wait_ready()
        base = f"http://127.0.0.1:{args.api_port}"
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        headers = {"Authorization": f"Bearer {key}"}
        operations = [result.ok() for result in schema.get_all_operations()]
        # The budget is shared evenly, so a slow operation cannot starve the ones after it.
        share = args.budget_s / len(operations)
        with requests.Session() as session:
            for operation in operations:
                deadline = time.monotonic() + share
                done = fuzz_operation(
                    operation, base, headers, args.examples, args.seed, deadline, session
                )
                report["budget reached"] = report.get("budget reached", 0) + (
                    time.monotonic() > deadline
                )
                figures.append(done)
                print(
                    f"{done.label}: {done.requests} requests, {len(done.server_errors)} 5xx, "
                    f"{len(done.other_failures)} other failures, {done.seconds:.0f} s, "
                    f"statuses {dict(sorted(done.statuses.items()))}",
                    flush=True,
                )
    finally:
        api.stop()
        if not args.keep_running:
            local.stop()
    report["operations"] = len(figures)
    report["requests"] = sum(f.requests for f in figures)
    report["5xx"] = sum(len(f.server_errors) for f in figures)
    report["other failures"] = sum(len(f.other_failures) for f in figures)
    report["per operation"] = [
        {
            "operation": f.label,
            "requests": f.requests,
            "statuses": dict(f.statuses),
            "5xx": f.server_errors,
            "other failures": f.other_failures,
            "seconds": round(f.seconds, 1),
        }
        for f in figures
    ]
    print(
        f"\nfuzz: {report['operations']} operations, {report['requests']} requests, "
        f"{report['5xx']} 5xx, {report['other failures']} other failures"
        + f"; {report.get('budget reached', 0)} operations stopped at their time budget"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
