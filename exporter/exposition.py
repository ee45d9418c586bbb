"""Metric families and their text renderings: Prometheus text 0.0.4 and OpenMetrics 1.0.

Families carry samples whose label sets are already rendered (``a="1",b="2"``): collect builds
each entity's identity labels once and reuses them for every metric of that entity, which keeps
rendering a large Summary cheap. Samples are held as two columns, label sets and values, so a
family's lines are assembled by C-level joins without a Python step per sample. No timestamps are
written, so Prometheus' staleness handling works when a pod disappears.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

__all__ = [
    "OPENMETRICS_CONTENT_TYPE",
    "TEXT_CONTENT_TYPE",
    "MetricFamily",
    "escape_label_value",
    "render_openmetrics",
    "render_text",
    "wants_openmetrics",
]

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Value = int | float


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """One metric and its samples: ``labels[i]`` (rendered) goes with ``values[i]``. ``type`` is
    "counter", "gauge" or "info"; ``name`` is the sample name (counters end in ``_total``, info
    metrics in ``_info``)."""

    name: str
    type: str
    help: str
    labels: Sequence[str]
    values: Sequence[Value]

    @property
    def samples(self) -> list[tuple[str, Value]]:
        return list(zip(self.labels, self.values, strict=True))


def escape_label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _format_value(value: Value) -> str:
    if type(value) is int:
        return str(value)
    if value != value:  # noqa: PLR0124 - NaN is the only value unequal to itself
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _render_samples(lines: list[str], family: MetricFamily) -> None:
    # The hot path of every collection: ``name{labels} value`` lines built by C-level joins.
    # For finite ints and floats repr() is already the exposition's spelling, and a finite sum
    # means every value is finite (NaN and the infinities propagate through it; an overflow
    # only sends us to the careful path).
    labels, values = family.labels, family.values
    if all(labels) and _all_finite(values):
        separator = "\n" + family.name + "{"
        lines.append(separator[1:])
        lines.append(separator.join(map("} ".join, zip(labels, map(repr, values), strict=True))))
        lines.append("\n")
    else:
        lines += map(_sample_line, repeat(family.name), labels, values)


def _all_finite(values: Sequence[Value]) -> bool:
    try:
        return math.isfinite(sum(values))
    except OverflowError:  # an int too large for a float
        return False


def _sample_line(name: str, labels: str, value: Value) -> str:
    if labels:
        return f"{name}{{{labels}}} {_format_value(value)}\n"
    return f"{name} {_format_value(value)}\n"


def render_text(families: Iterable[MetricFamily]) -> str:
    """Prometheus text exposition format 0.0.4."""
    lines: list[str] = []
    for family in families:
        kind = "gauge" if family.type == "info" else family.type
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}\n")
        lines.append(f"# TYPE {family.name} {kind}\n")
        _render_samples(lines, family)
    return "".join(lines)


def render_openmetrics(families: Iterable[MetricFamily]) -> str:
    """OpenMetrics 1.0 text: counter and info families are named without their suffix."""
    lines: list[str] = []
    for family in families:
        base = family.name
        if family.type == "counter" and base.endswith("_total"):
            base = base[: -len("_total")]
        elif family.type == "info" and base.endswith("_info"):
            base = base[: -len("_info")]
        help_text = _escape_help(family.help).replace('"', '\\"')
        lines.append(f"# HELP {base} {help_text}\n")
        lines.append(f"# TYPE {base} {family.type}\n")
        _render_samples(lines, family)
    lines.append("# EOF\n")
    return "".join(lines)


def wants_openmetrics(accept_header: str | None) -> bool:
    """Whether a scraper's Accept header asks for OpenMetrics (as Prometheus does when enabled)."""
    if not accept_header:
        return False
    for part in accept_header.split(","):
        media_type = part.split(";", 1)[0].strip().lower()
        if media_type == "application/openmetrics-text":
            return True
    return False
