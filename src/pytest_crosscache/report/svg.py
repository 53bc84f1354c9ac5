"""The page's charts as inline SVG: bars, sparklines, the suite chart, shard lanes.

Colours come from the stylesheet through class names (``fill`` in CSS
follows the light or dark scheme); every mark that carries meaning has a
``<title>`` for hover and screen readers, and marks that differ in meaning
differ in shape or text too, not only in colour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_crosscache.history.model import Run
from pytest_crosscache.report import markup
from pytest_crosscache.report.data import PlanView
from pytest_crosscache.report.markup import esc


def _num(value: float) -> str:
    # Short coordinates keep a chart of thousands of marks small.
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def nice_step(maximum: float, ticks: int = 5) -> float:
    """A round step (1, 2 or 5 times a power of ten) for an axis up to ``maximum``."""
    if maximum <= 0:
        return 1.0
    raw = maximum / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return float(factor * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def bar(value: float, maximum: float, width: int = 140, height: int = 12) -> str:
    """A bar of ``value`` on a track of ``maximum``.

    Decorative (hidden from screen readers): the number is always beside it.
    """
    filled = 0.0 if maximum <= 0 else max(min(value / maximum, 1.0), 0.0) * width
    return (
        f'<svg class="bar" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-hidden="true">'
        f'<rect class="track" width="{width}" height="{height}" rx="2"/>'
        f'<rect class="fill" width="{_num(max(filled, 1.0))}" height="{height}" '
        'rx="2"/>'
        "</svg>"
    )


def sparkline(values: Sequence[float], width: int = 96, height: int = 24) -> str:
    """A test's durations, oldest to newest, on a scale from zero to the largest."""
    if not values:
        return ""
    top = max(values) or 1.0
    pad = 3.0
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    points = [
        (pad + index * step, height - pad - value / top * (height - 2 * pad))
        for index, value in enumerate(values)
    ]
    path = " ".join(f"{_num(x)},{_num(y)}" for x, y in points)
    last_x, last_y = points[-1]
    label = (
        f"{len(values)} runs: min {markup.seconds(min(values))}, "
        f"max {markup.seconds(max(values))}, last {markup.seconds(values[-1])}"
    )
    return (
        f'<svg class="spark" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label)}">'
        f"<title>{esc(label)}</title>"
        f'<line class="base" x1="{_num(pad)}" x2="{_num(width - pad)}" '
        f'y1="{_num(height - pad)}" y2="{_num(height - pad)}"/>'
        f'<polyline points="{path}"/>'
        f'<circle cx="{_num(last_x)}" cy="{_num(last_y)}" r="2.5"/>'
        "</svg>"
    )


def axis_unit(maximum: float) -> tuple[float, str]:
    """Seconds per unit and the unit's name for an axis reaching ``maximum`` seconds."""
    if maximum >= 7200:
        return 3600.0, "h"
    if maximum >= 120:
        return 60.0, "min"
    return 1.0, "s"


def _ticks(maximum: float) -> tuple[float, list[tuple[float, str]]]:
    """The top of a seconds axis and its ticks, as (seconds, label), in one unit."""
    unit, name = axis_unit(maximum)
    step = nice_step(maximum / unit)
    top = max(math.ceil(maximum / unit / step) * step, step)
    ticks = []
    count = round(top / step)
    for index in range(count + 1):
        value = index * step
        ticks.append((value * unit, f"{value:g} {name}" if index else "0"))
    return top * unit, ticks


def _axis(
    maximum: float, left: float, right: float, bottom: float, top: float
) -> tuple[float, list[str]]:
    """Horizontal grid lines and labels of a seconds axis; returns the scale's top."""
    scale_top, ticks = _ticks(maximum)
    parts = []
    for seconds, label in ticks:
        y = bottom - seconds / scale_top * (bottom - top)
        parts.append(
            f'<line class="grid" x1="{_num(left)}" x2="{_num(right)}" '
            f'y1="{_num(y)}" y2="{_num(y)}"/>'
            f'<text class="tick" x="{_num(left - 6)}" y="{_num(y + 4)}" '
            f'text-anchor="end">{esc(label)}</text>'
        )
    return scale_top, parts


def suite_chart(runs: Sequence[Run], width: int = 960, height: int = 200) -> str:
    """Wall time of each run as a bar, oldest to newest; runs with failures marked ✗."""
    if not runs:
        return ""
    left, right, top, bottom = 64.0, width - 8.0, 18.0, height - 28.0
    scale_top, parts = _axis(
        max(run.duration for run in runs), left, right, bottom, top
    )
    slot = (right - left) / len(runs)
    bar_width = max(min(slot * 0.7, 48.0), 1.0)
    for index, run in enumerate(runs):
        x = left + index * slot + (slot - bar_width) / 2
        h = max(run.duration / scale_top * (bottom - top), 1.0)
        failed = run.failed > 0
        label = (
            f"run {index + 1}: {markup.when(run.started)}, "
            f"{markup.revision(run.revision)}{', CI' if run.ci else ''}; "
            f"{markup.seconds(run.duration)}, {markup.count(run.tests, 'test')}, "
            f"{run.failed:,} failed"
        )
        mark = (
            f'<text class="mark" x="{_num(x + bar_width / 2)}" '
            f'y="{_num(bottom - h - 4)}" text-anchor="middle">✗{run.failed:,}</text>'
            if failed
            else ""
        )
        cls = "run failed" if failed else "run"
        parts.append(
            f'<g class="{cls}"><title>{esc(label)}</title>'
            f'<rect x="{_num(x)}" y="{_num(bottom - h)}" width="{_num(bar_width)}" '
            f'height="{_num(h)}"/>{mark}</g>'
        )
    first, last = runs[0], runs[-1]
    parts.append(
        f'<text class="tick" x="{_num(left)}" y="{_num(height - 8)}">'
        f"{esc(markup.when(first.started))}</text>"
    )
    if len(runs) > 1:
        parts.append(
            f'<text class="tick" x="{_num(right)}" y="{_num(height - 8)}" '
            f'text-anchor="end">{esc(markup.when(last.started))}</text>'
        )
    summary = (
        f"Wall time of the last {len(runs)} runs, from "
        f"{markup.seconds(min(run.duration for run in runs))} to "
        f"{markup.seconds(max(run.duration for run in runs))}"
    )
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{esc(summary)}">' + "".join(parts) + "</svg>"
    )


def timeline(plan: PlanView, width: int = 960) -> str:
    """The shard plan: one lane per job, its tests as blocks in running order."""
    lane_height, gap = 26.0, 10.0
    left, right, top = 64.0, width - 96.0, 8.0
    bottom = top + len(plan.lanes) * (lane_height + gap)
    height = bottom + 24
    scale_top, ticks = _ticks(plan.longest or 1.0)
    scale = (right - left) / scale_top
    parts = [
        '<defs><pattern id="rest" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect class="rest-bg" width="6" height="6"/>'
        '<line class="rest-line" x1="0" y1="0" x2="0" y2="6"/></pattern></defs>'
    ]
    for seconds, label in ticks:
        x = left + seconds * scale
        parts.append(
            f'<line class="grid" x1="{_num(x)}" x2="{_num(x)}" y1="{_num(top)}" '
            f'y2="{_num(bottom - gap)}"/><text class="tick" x="{_num(x)}" '
            f'y="{_num(bottom + 8)}" text-anchor="middle">{esc(label)}</text>'
        )
    for number, lane in enumerate(plan.lanes, 1):
        y = top + (number - 1) * (lane_height + gap)
        middle = _num(y + lane_height / 2 + 4)
        parts.append(
            f'<text class="lane" x="{_num(left - 8)}" y="{middle}" '
            f'text-anchor="end">job {number}</text>'
        )
        for index, segment in enumerate(lane.segments):
            x = left + segment.start * scale
            w = max(segment.seconds * scale, 0.5)
            if segment.tests > 1:
                label = (
                    f"job {number}: {markup.count(segment.tests, 'more test')}, "
                    f"{markup.seconds(segment.seconds)} together"
                )
                cls = "seg more"
            else:
                label = (
                    f"job {number}: {segment.label} ({markup.seconds(segment.seconds)})"
                )
                cls = f"seg s{index % 2}"
            parts.append(
                f'<g class="{cls}"><title>{esc(label)}</title><rect x="{_num(x)}" '
                f'y="{_num(y)}" width="{_num(w)}" height="{_num(lane_height)}"/></g>'
            )
        parts.append(
            f'<text class="total" x="{_num(left + lane.seconds * scale + 6)}" '
            f'y="{middle}">{esc(markup.seconds(lane.seconds))}'
            "</text>"
        )
    summary = (
        f"{len(plan.lanes)} jobs; the longest takes {markup.seconds(plan.longest)}"
    )
    return (
        f'<svg class="chart timeline" viewBox="0 0 {width} {_num(height)}" '
        f'role="img" aria-label="{esc(summary)}">' + "".join(parts) + "</svg>"
    )
