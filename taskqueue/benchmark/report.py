"""The benchmark's report: each figure's repetitions, median, reference
and target, as a table or JSON."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Sequence

import msgspec

from taskqueue.benchmark import claim_keys, crash
from taskqueue.benchmark.options import (
    BULK_PRODUCERS,
    LIMIT,
    METRICS_SCRAPE_SECONDS,
    PRESSURE_TAIL,
    UNKNOWN_AHEAD,
    Options,
    rest_load_generator,
)


class Figure(msgspec.Struct, kw_only=True):
    phase: str
    figure: str
    unit: str
    reps: list[float]
    median: float
    reference: str | None = None
    reference_reps: list[float] | None = None
    reference_median: float | None = None
    ratio: float | None = None
    target: str | None = None
    met: bool | None = None


class PressureWindow(msgspec.Struct, kw_only=True):
    """One window of the pressure phase. Rates and latencies are of the tasks
    enqueued, picked up and finished in it (database clock); the rest is read
    at its end."""

    stage: str  # clean, pinned or recovery
    start_s: float  # seconds since the clean stage began
    end_s: float
    offered_per_s: float  # tasks enqueued (committed)
    completed_per_s: float  # tasks succeeded
    p50_ms: float | None  # pickup: first task_started minus task_queued
    p99_ms: float | None
    max_ms: float | None
    backlog: int  # tasks due and waiting at the window's end
    tasks_dead: int  # n_dead_tup of taskqueue.tasks at the window's end
    schema_dead: int  # n_dead_tup of every taskqueue table
    tasks_index_mb: float  # size of taskqueue.tasks's indexes
    pinned_xid: str | None  # the XID the pinning session held at the window's end
    producer_lag_s: float  # how far the producer fell behind its schedule, at most


class PressureStage(msgspec.Struct, kw_only=True):
    stage: str  # clean, pinned, recovery, or a tail: "pinned, last 60 s"
    seconds: float
    offered_per_s: float
    completed_per_s: float
    completed_over_offered: float | None
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


class PressureRun(msgspec.Struct, kw_only=True):
    """One run of the pressure phase: every window, each stage, and the ratios."""

    offered_rate: float  # tasks/s asked for
    rate_note: str  # how it was chosen
    workers: int
    concurrency: int
    pin_pid: int | None  # the idle-in-transaction session's backend
    pin_xid: int | None
    released: bool  # the session was gone after the pinned stage (and at the end)
    producer_behind: bool  # in some window the producer lagged its schedule
    windows: list[PressureWindow]
    stages: list[PressureStage]  # clean, pinned, recovery, then the two tails
    pinned_tail_over_clean_p99: float | None
    recovery_tail_over_clean_p99: float | None


class Report(msgspec.Struct, kw_only=True):
    server: str
    machine: str
    options: Options
    figures: list[Figure]
    pressure: list[PressureRun] = []  # one per rep of the pressure phase


def machine() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


# -- the report ----------------------------------------------------------------

# (key, phase, figure, unit, reference key, reference name, target text, met?)
Row = tuple[
    str,
    str,
    str,
    str,
    str | None,
    str | None,
    str | None,
    Callable[[float, float | None], bool] | None,
]

_ROWS: list[Row] = [
    (
        "single",
        "1 enqueue, single",
        "tasks/s",
        "tasks/s",
        "single_pgbench",
        "single-row INSERT commits, pgbench",
        ">= 60% of reference",
        lambda v, r: r is not None and v >= 0.6 * r,
    ),
    (
        "single_ref",
        "1 enqueue, single",
        "single-row INSERT commits, asyncpg",
        "tasks/s",
        "single_pgbench",
        "single-row INSERT commits, pgbench",
        None,
        None,
    ),
    (
        "single_pgbench",
        "1 enqueue, single",
        "single-row INSERT commits, pgbench (no Python client)",
        "tasks/s",
        None,
        None,
        None,
        None,
    ),
    (
        "single_sync",
        "1 enqueue, single",
        "tasks/s, sync (psycopg)",
        "tasks/s",
        "single",
        "async enqueue",
        ">= 90% of reference",
        lambda v, r: r is not None and v >= 0.9 * r,
    ),
    (
        "bulk",
        "2 enqueue, bulk",
        "tasks/s, 1 producer",
        "tasks/s",
        "bulk_statement",
        "one INSERT statement per call",
        ">= 100,000/s",
        lambda v, r: v >= 100_000,
    ),
    (
        "bulk_statement",
        "2 enqueue, bulk",
        "tasks/s, 1 producer, one INSERT statement per call (no COPY)",
        "tasks/s",
        "single_ref",
        "single-row INSERT commits",
        None,
        None,
    ),
    (
        "bulk_producers",
        "2 enqueue, bulk",
        f"tasks/s, {BULK_PRODUCERS} producers",
        "tasks/s",
        "bulk",
        "1 producer",
        ">= 100,000/s",
        lambda v, r: v >= 100_000,
    ),
    (
        "rest_single",
        "3 REST, single",
        "tasks/s",
        "tasks/s",
        "single_ref",
        "single-row INSERT commits",
        ">= 5,000/s",
        lambda v, r: v >= 5_000,
    ),
    ("rest_p50", "3 REST, single", "p50", "ms", None, None, None, None),
    ("rest_p99", "3 REST, single", "p99", "ms", None, None, "<= 25 ms", lambda v, r: v <= 25),
    (
        "rest_batch",
        "4 REST, batch",
        "tasks/s",
        "tasks/s",
        "bulk",
        "enqueue_many (phase 2)",
        ">= 50,000/s",
        lambda v, r: v >= 50_000,
    ),
    (
        "drain",
        "5 drain",
        "tasks/s",
        "tasks/s",
        "drain_ref",
        "SQL ceiling, batch 100",
        ">= 15,000/s",
        lambda v, r: v >= 15_000,
    ),
    (
        "drain_metrics",
        "5 drain",
        f"tasks/s, metrics on (scraped every {METRICS_SCRAPE_SECONDS:g} s)",
        "tasks/s",
        "drain",
        "drain, metrics off",
        ">= 95% of reference",
        lambda v, r: r is not None and v >= 0.95 * r,
    ),
    (
        "drain_metrics_cpu",
        "5 drain",
        "worker CPU per task, metrics on",
        "µs",
        "drain_cpu",
        "metrics off",
        "<= 105% of reference",
        lambda v, r: r is not None and v <= 1.05 * r,
    ),
    ("pickup_p50", "6 pickup latency", "p50", "ms", None, None, "<= 2 ms", lambda v, r: v <= 2),
    ("pickup_p95", "6 pickup latency", "p95", "ms", None, None, None, None),
    ("pickup_p99", "6 pickup latency", "p99", "ms", None, None, "<= 4 ms", lambda v, r: v <= 4),
    ("pickup_max", "6 pickup latency", "max", "ms", None, None, None, None),
    (
        "limited",
        "5 drain",
        f"tasks/s, concurrency limit {LIMIT:,}",
        "tasks/s",
        "drain",
        "drain, no limit",
        ">= 90% of reference",
        lambda v, r: r is not None and v >= 0.9 * r,
    ),
    (
        "unknown",
        "7 unknown types",
        f"drain, {UNKNOWN_AHEAD:,} unknown ahead",
        "tasks/s",
        "unknown_ref",
        "drain, none ahead",
        ">= 90% of reference",
        lambda v, r: r is not None and v >= 0.9 * r,
    ),
    (
        "depth_deep",
        "8 depth",
        "drain, deep queue",
        "tasks/s",
        "depth_shallow",
        "drain, shallow queue",
        ">= 90% of reference",
        lambda v, r: r is not None and v >= 0.9 * r,
    ),
    (
        "worker_rss",
        "9 memory",
        "worker peak RSS (phase 8)",
        "MB",
        None,
        None,
        "<= 100 MB",
        lambda v, r: v <= 100,
    ),
    (
        "drain_metrics_rss",
        "9 memory",
        "worker peak RSS, metrics on (phase 5)",
        "MB",
        "drain_rss",
        "metrics off",
        "<= 100 MB",
        lambda v, r: v <= 100,
    ),
    (
        "api_rss",
        "9 memory",
        "API peak RSS (phase 3)",
        "MB",
        None,
        None,
        "<= 150 MB",
        lambda v, r: v <= 150,
    ),
]


def _sized_rows(o: Options) -> list[Row]:
    """The rows of phases 10 and 11, whose labels carry their sizes."""
    kept = f"{o.history_rows:,} finished kept"
    tail = f"last {min(PRESSURE_TAIL, o.pressure_pinned):g} s pinned"
    recovery = f"last {min(o.pressure_window, o.pressure_recovery):g} s of recovery"
    return [
        (
            "history",
            "10 history",
            f"drain, {kept}",
            "tasks/s",
            "history_ref",
            "drain, empty database",
            ">= 90% of reference",
            lambda v, r: r is not None and v >= 0.9 * r,
        ),
        (
            "history_queues",
            "10 history",
            f"GET /api/queues, {kept}",
            "ms",
            "history_ref_queues",
            "empty database",
            "< 100 ms",
            lambda v, r: v < 100,
        ),
        ("pressure_clean_p50", "11 pressure", "pickup p50, clean", "ms", None, None, None, None),
        ("pressure_clean_p99", "11 pressure", "pickup p99, clean", "ms", None, None, None, None),
        (
            "pressure_pinned_p50",
            "11 pressure",
            f"pickup p50, {tail}",
            "ms",
            "pressure_clean_p50",
            "clean",
            None,
            None,
        ),
        (
            "pressure_pinned_p99",
            "11 pressure",
            f"pickup p99, {tail}",
            "ms",
            "pressure_clean_p99",
            "clean",
            "<= 2x clean",
            lambda v, r: r is not None and v <= 2 * r,
        ),
        (
            "pressure_recovery_p99",
            "11 pressure",
            f"pickup p99, {recovery}",
            "ms",
            "pressure_clean_p99",
            "clean",
            "<= 1.5x clean",
            lambda v, r: r is not None and v <= 1.5 * r,
        ),
        (
            "pressure_completed",
            "11 pressure",
            "completed while pinned",
            "tasks/s",
            "pressure_offered",
            "offered while pinned",
            ">= 99% of offered",
            lambda v, r: r is not None and v >= 0.99 * r,
        ),
        (
            "workflow_accept",
            "12 workflow",
            f"accept a {20 * o.workflow_width:,}-task graph (20 layers, 3 parents each)",
            "s",
            None,
            None,
            "< 1 s",
            lambda v, r: v < 1,
        ),
        (
            "workflow_drain",
            "12 workflow",
            "drain the graph",
            "tasks/s",
            "workflow_flat",
            "as many independent tasks",
            ">= 70% of reference",
            lambda v, r: r is not None and v >= 0.7 * r,
        ),
        (
            "workflow_release_p50",
            "12 workflow",
            "parent done -> child start (paced pairs), p50",
            "ms",
            None,
            None,
            None,
            None,
        ),
        (
            "workflow_release_p99",
            "12 workflow",
            "parent done -> child start (paced pairs), p99",
            "ms",
            None,
            None,
            "< 50 ms",
            lambda v, r: v < 50,
        ),
        (
            "workflow_drain_release_p99",
            "12 workflow",
            "same inside the graph's drain (queued behind its layer), p99",
            "ms",
            None,
            None,
            None,
            None,
        ),
        (
            "pressure_dead",
            "11 pressure",
            "dead tuples in tasks, end of pinned",
            "rows",
            None,
            None,
            None,
            None,
        ),
    ]


def figures(results: dict[str, list[float]], options: Options | None = None) -> list[Figure]:
    found: list[Figure] = []
    sized = options or Options()
    rows = _ROWS + _sized_rows(sized) + claim_keys.rows(sized) + crash.rows(sized)
    for key, phase, figure, unit, ref_key, ref_name, target, met in rows:
        values = results.get(key)
        if not values:
            continue
        median = statistics.median(values)
        ref_values = results.get(ref_key) if ref_key else None
        ref_median = statistics.median(ref_values) if ref_values else None
        found.append(
            Figure(
                phase=phase,
                figure=figure,
                unit=unit,
                reps=values,
                median=median,
                reference=ref_name if ref_values else None,
                reference_reps=ref_values,
                reference_median=ref_median,
                ratio=median / ref_median if ref_median else None,
                target=target,
                met=met(median, ref_median) if met else None,
            )
        )
    return found


def render_table(report: Report) -> str:
    def number(value: float | None, unit: str = "") -> str:
        if value is None:
            return "—"
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
        return f"{text} {unit}".strip()

    header = ("phase", "figure", "median", "reference (median)", "ratio", "target", "met")
    rows = [header]
    for f in report.figures:
        reference = f"{f.reference}: {number(f.reference_median, f.unit)}" if f.reference else "—"
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "—"
        met = "—" if f.met is None else ("yes" if f.met else "NO")
        rows.append(
            (f.phase, f.figure, number(f.median, f.unit), reference, ratio, f.target or "—", met)
        )
    lines = _columns(rows)
    footer = (
        f"{report.server}; {report.machine}; medians of {report.options.reps} reps; "
        f"REST load from {rest_load_generator(report.options)}"
    )
    runs = [render_pressure(run) for run in report.pressure]
    return "\n\n".join(["\n".join([*lines, "", footer]), *runs])


def render_pressure(run: PressureRun) -> str:
    """A pressure run as text: its windows, then its stages and ratios."""

    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:,.1f}"

    header = (
        "stage",
        "window s",
        "offered/s",
        "done/s",
        "backlog",
        "p50 ms",
        "p99 ms",
        "max ms",
        "dead tup",
        "index MB",
        "pinned xid",
        "lag s",
    )
    rows = [header]
    for w in run.windows:
        rows.append(
            (
                w.stage,
                f"{w.start_s:g}-{w.end_s:g}",
                f"{w.offered_per_s:,.0f}",
                f"{w.completed_per_s:,.0f}",
                f"{w.backlog:,}",
                ms(w.p50_ms),
                ms(w.p99_ms),
                ms(w.max_ms),
                f"{w.tasks_dead:,}",
                f"{w.tasks_index_mb:,.1f}",
                w.pinned_xid or "—",
                f"{w.producer_lag_s:.2f}",
            )
        )
    lines = _columns(rows)
    stage_rows = [
        ("stage", "seconds", "offered/s", "done/s", "done/offered", "p50 ms", "p99 ms", "max ms")
    ]
    for s in run.stages:
        share = "—" if s.completed_over_offered is None else f"{s.completed_over_offered:.3f}"
        stage_rows.append(
            (
                s.stage,
                f"{s.seconds:g}",
                f"{s.offered_per_s:,.0f}",
                f"{s.completed_per_s:,.0f}",
                share,
                ms(s.p50_ms),
                ms(s.p99_ms),
                ms(s.max_ms),
            )
        )

    def ratio(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    notes = [
        f"offered {run.offered_rate:,.0f} tasks/s ({run.rate_note}); {run.workers} workers "
        f"x concurrency {run.concurrency}; pinning session pid {run.pin_pid}, xid {run.pin_xid}, "
        f"{'released' if run.released else 'NOT seen released'}",
        f"p99 ratios: pinned tail / clean {ratio(run.pinned_tail_over_clean_p99)}, "
        f"recovery tail / clean {ratio(run.recovery_tail_over_clean_p99)}",
    ]
    if run.producer_behind:
        notes.append("the producer fell behind its schedule (lag s > 1): see the lag column")
    return "\n".join([*lines, "", *_columns(stage_rows), "", *notes])


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return lines
