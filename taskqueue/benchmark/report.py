"""The benchmark's report: each figure's repetitions, median, reference
and target, as a table or JSON."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable

import msgspec

from taskqueue.benchmark.options import (
    BULK_PRODUCERS,
    LIMIT,
    METRICS_SCRAPE_SECONDS,
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


class Report(msgspec.Struct, kw_only=True):
    server: str
    machine: str
    options: Options
    figures: list[Figure]


def machine() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


# -- the report ----------------------------------------------------------------

# (key, phase, figure, unit, reference key, reference name, target text, met?)
_ROWS: list[
    tuple[
        str,
        str,
        str,
        str,
        str | None,
        str | None,
        str | None,
        Callable[[float, float | None], bool] | None,
    ]
] = [
    (
        "single",
        "1 enqueue, single",
        "tasks/s",
        "tasks/s",
        "single_ref",
        "single-row INSERT commits",
        ">= 80% of reference",
        lambda v, r: r is not None and v >= 0.8 * r,
    ),
    (
        "bulk",
        "2 enqueue, bulk",
        "tasks/s, 1 producer",
        "tasks/s",
        "single_ref",
        "single-row INSERT commits",
        ">= 100,000/s",
        lambda v, r: v >= 100_000,
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


def figures(results: dict[str, list[float]]) -> list[Figure]:
    found: list[Figure] = []
    for key, phase, figure, unit, ref_key, ref_name, target, met in _ROWS:
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
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    footer = (
        f"{report.server}; {report.machine}; medians of {report.options.reps} reps; "
        f"REST load from {rest_load_generator(report.options)}"
    )
    return "\n".join([*lines, "", footer])
