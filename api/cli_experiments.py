"""`kgrec experiments create|list|show|report|stop|promote`: A/B experiments from the shell.

The commands change the graph directly (audited as `cli:<user>`); running APIs pick a change up
within KGREC_SNAPSHOT_REFRESH_S."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table

from api.console import console
from graph.driver import driver_scope
from graph.errors import KgrecError
from graph.settings import get_settings
from recommender.experiments import (
    EXPERIMENT_SURFACES,
    Experiment,
    ExperimentReport,
    ExperimentSpec,
    ExperimentStore,
)

experiments_app = typer.Typer(
    help="A/B experiments: create, list, show, report, stop, promote a winner.",
    no_args_is_help=True,
)


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise KgrecError(f"{option} {value!r}: expected NAME=VALUE")
        out[name] = rest
    return out


def _spec(
    name: str,
    surfaces: list[str],
    variants: list[str],
    models: list[str],
    rankings: list[str],
    control: str | None,
    note: str,
) -> ExperimentSpec:
    """The spec from the options, every mistake named by its option."""
    weights = _pairs(variants, "--variant")
    model_of = _pairs(models, "--model")
    ranking_of = _pairs(rankings, "--ranking")
    for option, named in (("--model", model_of), ("--ranking", ranking_of)):
        unknown = sorted(set(named) - set(weights))
        if unknown:
            raise KgrecError(f"{option} names {unknown}, which no --variant defines")
    arms: list[dict[str, Any]] = []
    for variant, weight in weights.items():
        arm: dict[str, Any] = {"name": variant, "weight": weight}
        if variant in model_of:
            arm["model_version"] = model_of[variant]
        if variant in ranking_of:
            try:
                arm["ranking"] = json.loads(ranking_of[variant])
            except json.JSONDecodeError as exc:
                raise KgrecError(f"--ranking {variant}=...: not JSON ({exc})") from exc
        arms.append(arm)
    try:
        return ExperimentSpec.model_validate(
            {
                "name": name,
                "surfaces": surfaces,
                "variants": arms,
                "control": control,
                "note": note,
            }
        )
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()
        )
        raise KgrecError(f"experiment not created: {reasons}") from exc


def _describe(e: Experiment) -> None:
    state = e.status + (f", promoted {e.promoted_variant!r}" if e.promoted_variant else "")
    console.print(
        f"Experiment {e.experiment_id} {e.name!r} ({state}) on {', '.join(e.surfaces)}; "
        f"control {e.control!r}; created {e.created_at:%Y-%m-%d %H:%M} UTC by {e.created_by}",
        markup=False,
    )
    for v in e.variants:
        console.print(f"  {v.name}: {v.weight:.0%} of customers, {v.describe()}", markup=False)


@experiments_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="What is being tested.")],
    surface: Annotated[
        list[str], typer.Option(help=f"Where it runs ({', '.join(EXPERIMENT_SURFACES)}); repeat.")
    ],
    variant: Annotated[
        list[str], typer.Option(help="NAME=SHARE, e.g. control=0.5; repeat; the first is control.")
    ],
    model: Annotated[
        list[str] | None, typer.Option(help="NAME=MODEL_VERSION: the variant serves that version.")
    ] = None,
    ranking: Annotated[
        list[str] | None,
        typer.Option(help="NAME=JSON ranking weights, e.g. diverse='{\"diversity\": 0.3}'."),
    ] = None,
    control: Annotated[str | None, typer.Option(help="The control (default: first).")] = None,
    note: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "",
) -> None:
    """Start an experiment (at most one running per surface)."""
    spec = _spec(name, surface, variant, model or [], ranking or [], control, note)
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        experiment = ExperimentStore(driver, database=settings.neo4j.database).create(spec)
    _describe(experiment)
    console.print(
        f"Running APIs serve it within {settings.app.snapshot_refresh_s:g} s. Report: "
        f"kgrec experiments report {experiment.experiment_id}",
        markup=False,
    )


@experiments_app.command("list")
def list_experiments() -> None:
    """Experiments, newest first."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        experiments = ExperimentStore(driver, database=settings.neo4j.database).recent()
    if not experiments:
        console.print("No experiments. Start one with: kgrec experiments create --help")
        return
    table = Table(show_edge=False)
    for column in ("experiment", "name", "status", "surfaces", "variants", "created (UTC)"):
        table.add_column(column)
    for e in experiments:
        status = e.status + (f" (promoted {e.promoted_variant})" if e.promoted_variant else "")
        table.add_row(
            e.experiment_id,
            e.name,
            status,
            ", ".join(e.surfaces),
            ", ".join(f"{v.name} {v.weight:.0%}" for v in e.variants),
            f"{e.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@experiments_app.command("show")
def show(experiment_id: Annotated[str, typer.Argument(help="The experiment's id.")]) -> None:
    """One experiment and its audit trail."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        store = ExperimentStore(driver, database=settings.neo4j.database)
        experiment = store.get(experiment_id)
        audit = store.audit_trail(experiment_id)
    _describe(experiment)
    for a in audit:
        reason = f" ({a['reason']})" if a.get("reason") else ""
        console.print(
            f"  {a['ts'].to_native():%Y-%m-%d %H:%M:%S} {a['actor']} {a['action']}: "
            f"{a['before']} -> {a['after']}{reason}",
            markup=False,
        )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def print_report(report: ExperimentReport) -> None:
    """The report as a table: one row per variant and metric."""
    stats = report.stats
    e = report.experiment
    console.print(
        f"Experiment {e.experiment_id} {e.name!r} ({e.status}), events up to "
        f"{report.window_end:%Y-%m-%d %H:%M} UTC; control {stats.control!r}",
        markup=False,
    )
    table = Table(show_edge=False)
    for column in ("variant", "customers", "lists", "clicks", "metric", "value (95% CI)"):
        table.add_column(column)
    for column in ("vs control (CI)", "p", "signif."):
        table.add_column(column)
    for v in stats.variants:
        first = True
        for metric, estimate in v.metrics.items():
            fmt = _money if metric == "revenue_per_customer" else _pct
            shown = f"{fmt(estimate.value)} ({fmt(estimate.ci_low)} to {fmt(estimate.ci_high)})"
            c = v.vs_control.get(metric)
            versus = p = mark = ""
            if c is not None:
                versus = f"{fmt(c.difference)} ({fmt(c.ci_low)} to {fmt(c.ci_high)})"
                p = "-" if c.p_adjusted is None else f"{c.p_adjusted:.4f}"
                mark = "yes" if c.significant else "no"
            table.add_row(
                v.name if first else "",
                f"{v.customers:,}" if first else "",
                f"{v.lists:,}" if first else "",
                f"{v.clicks:,}" if first else "",
                metric,
                shown,
                versus,
                p,
                mark,
            )
            first = False
    console.print(table)
    for note in stats.notes:
        console.print(f"note: {note}", markup=False)
    if report.customers_in_several_variants:
        console.print(
            f"note: {report.customers_in_several_variants} customer(s) saw more than one "
            "variant and are left out",
            markup=False,
        )


@experiments_app.command("report")
def report(
    experiment_id: Annotated[str, typer.Argument(help="The experiment's id.")],
    alpha: Annotated[float, typer.Option(min=0.001, max=0.5, help="Significance level.")] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="JSON as the API gives it.")] = False,
) -> None:
    """Per variant: customers, lists, clicks, rates and revenue with intervals and tests."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        found = ExperimentStore(driver, database=settings.neo4j.database).report(
            experiment_id, alpha=alpha
        )
    if as_json:
        from api.routes_experiments import report_out

        console.print_json(report_out(found).model_dump_json())
        return
    print_report(found)


@experiments_app.command("stop")
def stop(
    experiment_id: Annotated[str, typer.Argument(help="The experiment's id.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
) -> None:
    """Stop serving the variants (the report counts up to now)."""
    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        experiment = ExperimentStore(driver, database=settings.neo4j.database).stop(
            experiment_id, reason=reason
        )
    console.print(
        f"Stopped {experiment.experiment_id} {experiment.name!r}; running APIs serve the "
        f"control within {settings.app.snapshot_refresh_s:g} s.",
        markup=False,
    )


@experiments_app.command("promote")
def promote(
    experiment_id: Annotated[str, typer.Argument(help="The experiment's id.")],
    variant: Annotated[str, typer.Argument(help="The winner.")],
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
) -> None:
    """Make a variant what everyone gets (stops the experiment if it runs).

    A model version is activated through the registry, forced, with the experiment as the
    audited reason; ranking weights are stored on the experiment and applied by every API."""
    from gnn.registry import Registry

    settings = get_settings()
    with driver_scope(settings.neo4j) as driver:
        db = settings.neo4j.database
        registry = Registry(driver, database=db, root=settings.app.home.resolve() / "models")
        active = registry.active()

        def activate(version_id: str, why: str) -> None:
            registry.activate(
                version_id, margin=settings.app.activation_margin, force=True, reason=why
            )

        done = ExperimentStore(driver, database=db).promote(
            experiment_id,
            variant,
            activate=activate,
            active_model=active.version_id if active else None,
            reason=reason,
        )
    what = []
    if done.activated_model:
        what.append(f"activated model {done.activated_model}")
    if done.ranking:
        surfaces = ", ".join(done.experiment.surfaces)
        what.append(f"ranking {json.dumps(done.ranking, sort_keys=True)} on {surfaces}")
    console.print(
        f"Promoted {variant!r} of {experiment_id}: {'; '.join(what) or 'nothing to change'}. "
        f"Running APIs apply it within {settings.app.snapshot_refresh_s:g} s.",
        markup=False,
    )
