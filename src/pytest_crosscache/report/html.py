"""The report as one self-contained HTML page.

:func:`render` is a pure function of the view model: the same
:class:`~pytest_crosscache.report.data.Report` always gives the same page.
Every piece of data passes through :func:`~pytest_crosscache.report.markup.esc`
on its way in; the rest of the markup is literal.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence

from pytest_crosscache._version import __version__
from pytest_crosscache.history import model
from pytest_crosscache.history.model import Run
from pytest_crosscache.report import markup
from pytest_crosscache.report import svg
from pytest_crosscache.report.assets import CONTENT_SECURITY_POLICY
from pytest_crosscache.report.assets import CSS
from pytest_crosscache.report.assets import JS
from pytest_crosscache.report.data import FailingRow
from pytest_crosscache.report.data import FlakyRow
from pytest_crosscache.report.data import PlanView
from pytest_crosscache.report.data import Report
from pytest_crosscache.report.data import SlowRow
from pytest_crosscache.report.data import Strip
from pytest_crosscache.report.markup import esc

#: What each outcome's cell shows: pytest's own progress letters, so the
#: strip reads like a row of pytest output, with or without colour.
GLYPHS = {
    model.PASSED: ".",
    model.FAILED: "F",
    model.ERROR: "E",
    model.SKIPPED: "s",
    model.XFAILED: "x",
    model.XPASSED: "X",
    model.RERUN_PASSED: "R",
}
WORDS = {
    model.PASSED: "passed",
    model.FAILED: "failed",
    model.ERROR: "error",
    model.SKIPPED: "skipped",
    model.XFAILED: "xfailed",
    model.XPASSED: "xpassed",
    model.RERUN_PASSED: "passed on a rerun",
}
#: The class suffix and glyph of a run the test was not part of.
NOT_RUN = "_"
DASH = "\N{EN DASH}"

_HEAD = (
    "<!DOCTYPE html>\n"
    '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    '<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
    '<meta name="generator" content="pytest-crosscache {version}">\n'
    "<title>{title}</title>\n<style>{css}</style>\n</head>\n<body>\n<main>\n"
)


def render(report: Report) -> str:
    """The page of ``report``: HTML5, UTF-8, no external resource of any kind."""
    return "".join(_page(report))


def _page(report: Report) -> Iterator[str]:
    yield _HEAD.format(
        policy=CONTENT_SECURITY_POLICY,
        version=esc(__version__),
        title=esc(report.title),
        css=CSS,
    )
    yield from _header(report)
    yield from _summary(report)
    if not report.runs:
        yield (
            '<p class="empty">No runs are recorded in this cache yet. Run pytest '
            "(with pytest-crosscache installed) a few times, then make the report "
            "again.</p>\n"
        )
    else:
        yield from _flaky(report)
        yield from _failing(report)
        yield from _slowest(report)
        yield from _shards(report)
    yield (
        f"<footer>Made by pytest-crosscache {esc(__version__)} "
        f"(<code>crosscache report</code>) on {esc(markup.when(report.generated))}."
        "</footer>\n</main>\n"
        f"<script>{JS}</script>\n</body>\n</html>\n"
    )


def _header(report: Report) -> Iterator[str]:
    yield f"<header>\n<h1>{esc(report.title)}</h1>\n"
    source = f" from <code>{esc(report.source)}</code>" if report.source else ""
    when = esc(markup.when(report.generated))
    yield f'<p class="meta">Recorded test history{source}, as of {when}.</p>\n'
    links = [("summary", "Summary")]
    if report.runs:
        if report.flaky is not None:
            links.append(("flaky", "Flaky tests"))
        links += [("failing", "Failing now"), ("slowest", "Slowest tests")]
        if report.plan is not None:
            links.append(("shards", "Shard plan"))
    yield '<nav aria-label="Sections">'
    yield "".join(f'<a href="#{anchor}">{text}</a>' for anchor, text in links)
    yield "</nav>\n</header>\n"


def _card(
    value: str,
    key: str,
    detail: str = "",
    *,
    href: str = "",
    tone: str = "",
    hover: str = "",
) -> str:
    """One number of the summary; every argument is markup already."""
    tag = "a" if href else "div"
    attrs = f' href="#{href}"' if href else ""
    attrs += f' class="card {tone}"' if tone else ' class="card"'
    attrs += f' title="{hover}"' if hover else ""
    sub = f'<span class="s">{detail}</span>' if detail else ""
    return (
        f'<{tag}{attrs}><span class="k">{key}</span>'
        f'<span class="n">{value}</span>{sub}</{tag}>'
    )


def _summary(report: Report) -> Iterator[str]:
    summary = report.summary
    last = summary.last_run
    cards = [
        _card(
            f"{summary.tests:,}",
            "tests",
            f"{last.tests:,} in the last run" if last else "none recorded",
        ),
        _card(
            f"{summary.runs:,}",
            "runs recorded",
            f"latest {esc(markup.age(report.generated - last.started))}"
            if last
            else "none yet",
            hover=esc(f"last run: {markup.when(last.started)}") if last else "",
        ),
    ]
    if summary.failing:
        cards.append(
            _card(
                f"✗ {summary.failing:,}",
                "failing now",
                "red in their last run",
                href="failing",
                tone="bad",
            )
        )
    else:
        cards.append(_card("✓ 0", "failing now", "all green", tone="good"))
    if summary.flaky is not None:
        cards.append(
            _card(
                f"{summary.flaky:,}",
                "flaky",
                "on the same code",
                href="flaky" if summary.flaky else "",
                tone="bad" if summary.flaky else "good",
            )
        )
    if summary.new is not None:
        cards.append(_card(f"{summary.new:,}", "new", "one run so far"))
    slowest = summary.slowest
    if slowest is not None:
        cards.append(
            _card(
                esc(markup.seconds(slowest.median)),
                "slowest test",
                esc(slowest.nodeid.rpartition("::")[2]),
                href="slowest",
                hover=esc(slowest.nodeid),
            )
        )
    if last is not None:
        cards.append(
            _card(
                esc(markup.seconds(last.duration)),
                "last run took",
                esc(markup.revision(last.revision)),
                hover=esc(last.revision or ""),
            )
        )
    yield '<section id="summary" class="cards" aria-label="Summary">\n'
    yield "\n".join(cards)
    yield "\n</section>\n"


def _legend() -> str:
    letters = (
        model.PASSED,
        model.FAILED,
        model.ERROR,
        model.RERUN_PASSED,
        model.SKIPPED,
        model.XFAILED,
        model.XPASSED,
    )
    items = [
        f'<span class="item"><span class="o o-{letter}">{esc(GLYPHS[letter])}</span>'
        f"{WORDS[letter]}</span>"
        for letter in letters
    ]
    items.append(
        f'<span class="item"><span class="o o-{NOT_RUN}">{DASH}</span>'
        "did not run</span>"
    )
    return (
        '<p class="legend">One cell per run, oldest first; a gap between commits. '
        + "".join(items)
        + "</p>\n"
    )


def _strip(strip: Strip, runs: Sequence[Run]) -> str:
    cells = []
    total = len(runs)
    previous: str | None = None
    for number, (cell, run) in enumerate(zip(strip, runs, strict=True), 1):
        # A gap before each commit's first run: flakiness shows as red and
        # green between the same two gaps.
        gap = " c" if number > 1 and run.revision != previous else ""
        previous = run.revision
        where = (
            f"run {number} of {total}, {markup.when(run.started)}, "
            f"{markup.revision(run.revision)}"
        )
        if cell is None:
            letter, glyph, what = NOT_RUN, DASH, f"{where}: did not run"
        else:
            letter = cell.outcome if cell.outcome in GLYPHS else NOT_RUN
            glyph = GLYPHS.get(cell.outcome, "?")
            word = WORDS.get(cell.outcome, f"outcome {cell.outcome!r}")
            what = f"{where}: {word} in {markup.seconds(cell.seconds)}"
        cells.append(
            f'<span class="o o-{letter}{gap}" title="{esc(what)}">{esc(glyph)}</span>'
        )
    return f'<div class="strip">{"".join(cells)}</div>'


def _test_cell(
    nodeid: str, strip: Strip | None = None, runs: Sequence[Run] = ()
) -> str:
    tail = _strip(strip, runs) if strip is not None else ""
    return f'<td><code class="id">{esc(nodeid)}</code>{tail}</td>'


def _filter(table: str, shown: int) -> str:
    if shown < 2:
        return ""
    return (
        f'<input class="filter" type="search" data-table="{table}" hidden '
        f'placeholder="Filter the {shown} tests shown" '
        'aria-label="Filter the tests shown by name">\n'
    )


def _more(hidden: int, what: str) -> str:
    if not hidden:
        return ""
    return (
        f'<p class="more">…and {markup.count(hidden, "more " + what)}, not shown '
        "(<code>crosscache report --top N</code> shows more).</p>\n"
    )


def _open_section(anchor: str, title: str, total: int) -> str:
    return (
        f'<section id="{anchor}">\n'
        f'<h2>{title} <span class="count">({total:,})</span></h2>\n'
    )


def _empty(text: str) -> str:
    return f'<p class="empty">{text}</p>\n</section>\n'


def _table_head(table: str, *columns: str) -> str:
    return (
        f'<table id="{table}">\n<thead><tr>{"".join(columns)}</tr></thead>\n<tbody>\n'
    )


def _flaky(report: Report) -> Iterator[str]:
    section = report.flaky
    if section is None:
        return
    yield _open_section("flaky", "Flaky tests", section.total)
    if not section.rows:
        yield _empty(
            "✓ No test both passed and failed on the same code in the recorded runs."
        )
        return
    yield (
        '<p class="note">Tests that passed and failed on the same code, or passed '
        "only on a rerun; the highest flip rate (changes between pass and fail "
        "per run) first.</p>\n"
    )
    yield _legend()
    yield _filter("t-flaky", len(section.rows))
    yield _table_head(
        "t-flaky",
        '<th data-sort="text">Test and its recent runs</th>',
        '<th class="num" data-sort="num" aria-sort="descending">Flip rate</th>',
        '<th class="num" data-sort="num">Failures</th>',
        "<th>Evidence</th>",
    )
    for row in section.rows:
        yield _flaky_row(row, report.runs)
    yield "</tbody>\n</table>\n"
    yield _more(section.hidden, "flaky test")
    yield "</section>\n"


def _flaky_row(row: FlakyRow, runs: Sequence[Run]) -> str:
    flips = f"{markup.count(row.flips, 'flip')} in {markup.count(row.runs, 'run')}"
    return (
        f"<tr>{_test_cell(row.nodeid, row.strip, runs)}"
        f'<td class="num" data-v="{row.flip_rate:.4f}">'
        f"{markup.percent(row.flip_rate)}<small>{flips}</small></td>"
        f'<td class="num" data-v="{row.failures}">{row.failures:,}</td>'
        f"<td>{esc(row.evidence)}</td></tr>\n"
    )


def _failing(report: Report) -> Iterator[str]:
    section = report.failing
    yield _open_section("failing", "Failing now", section.total)
    if not section.rows:
        yield _empty("✓ No test failed in its last recorded run.")
        return
    yield (
        '<p class="note">Tests whose last recorded outcome is a failure or an '
        "error, most recently broken first.</p>\n"
    )
    if report.flaky is None or not report.flaky.rows:
        yield _legend()
    yield _filter("t-failing", len(section.rows))
    yield _table_head(
        "t-failing",
        '<th data-sort="text">Test and its recent runs</th>',
        '<th class="num" data-sort="num" aria-sort="descending">Failing since</th>',
        '<th class="num" data-sort="num">Runs in a row</th>',
    )
    for row in section.rows:
        yield _failing_row(row, report.runs, report.generated)
    yield "</tbody>\n</table>\n"
    yield _more(section.hidden, "failing test")
    yield "</section>\n"


def _failing_row(row: FailingRow, runs: Sequence[Run], now: float) -> str:
    if row.since is None:
        since = '<td class="num" data-v="0">unknown</td>'
    else:
        # Failing in every recorded run: it may have broken before them.
        prefix = "before " if row.always else ""
        commit = esc(markup.revision(row.since.revision))
        ago = esc(markup.age(now - row.since.started))
        since = (
            f'<td class="num" data-v="{row.since.started:.0f}">'
            f"{prefix}{esc(markup.when(row.since.started))}"
            f"<small>{commit}, {ago}</small></td>"
        )
    every = "<small>every recorded run</small>" if row.always else ""
    return (
        f"<tr>{_test_cell(row.nodeid, row.strip, runs)}{since}"
        f'<td class="num" data-v="{row.streak}">{row.streak:,}{every}</td></tr>\n'
    )


def _slowest(report: Report) -> Iterator[str]:
    section = report.slowest
    yield _open_section("slowest", "Slowest tests", section.total)
    yield "<h3>Wall time of each run</h3>\n"
    yield (
        '<p class="note">Oldest on the left; ✗N marks a run with N failed tests. '
        "Hover a bar for its run.</p>\n"
    )
    yield svg.suite_chart(report.runs) + "\n"
    if not section.rows:
        yield _empty("No durations recorded.")
        return
    yield f"<h3>The {len(section.rows):,} slowest tests, by median duration</h3>\n"
    yield _filter("t-slowest", len(section.rows))
    yield _table_head(
        "t-slowest",
        '<th data-sort="text">Test</th>',
        '<th class="num" data-sort="num" aria-sort="descending">Median</th>',
        '<th><span class="sr">Median as a bar</span></th>',
        '<th data-sort="num">Trend over the recorded runs</th>',
        '<th class="num" data-sort="num">Last run</th>',
    )
    longest = section.rows[0].median
    for row in section.rows:
        yield _slow_row(row, longest)
    yield "</tbody>\n</table>\n"
    yield _more(section.hidden, "timed test")
    yield "</section>\n"


def _trend(row: SlowRow) -> str:
    trend = row.trend
    if trend is None:
        return '<span class="trend">too few runs</span>'
    if row.changed and trend > 1:
        return f'<span class="trend up">▲ {markup.percent(trend - 1)} slower</span>'
    if row.changed:
        return f'<span class="trend">▼ {markup.percent(1 - trend)} faster</span>'
    return '<span class="trend">≈ steady</span>'


def _slow_row(row: SlowRow, longest: float) -> str:
    last = row.durations[-1]
    trend = row.trend if row.trend is not None else 1.0
    return (
        f"<tr>{_test_cell(row.nodeid)}"
        f'<td class="num" data-v="{row.median:.6f}">'
        f"{esc(markup.seconds(row.median))}</td>"
        f"<td>{svg.bar(row.median, longest)}</td>"
        f'<td data-v="{trend:.4f}"><div class="spark-cell">'
        f"{svg.sparkline(row.durations)}{_trend(row)}</div></td>"
        f'<td class="num" data-v="{last:.6f}">{esc(markup.seconds(last))}</td>'
        "</tr>\n"
    )


def _shards(report: Report) -> Iterator[str]:
    plan = report.plan
    if plan is None:
        return
    yield f'<section id="shards">\n<h2>Shard plan for {len(plan.lanes)} jobs</h2>\n'
    yield _plan_note(plan)
    yield svg.timeline(plan) + "\n"
    yield _table_head(
        "t-shards",
        "<th>Job</th>",
        '<th class="num">Tests</th>',
        '<th class="num">Time</th>',
        "<th>Its longest test</th>",
    )
    for number, lane in enumerate(plan.lanes, 1):
        first = next((s for s in lane.segments if s.tests == 1), None)
        longest = DASH
        if first is not None:
            longest = (
                f'<code class="id">{esc(first.label)}</code> '
                f"({esc(markup.seconds(first.seconds))})"
            )
        yield (
            f'<tr><td>job {number}</td><td class="num">{lane.tests:,}</td>'
            f'<td class="num">{esc(markup.seconds(lane.seconds))}</td>'
            f"<td>{longest}</td></tr>\n"
        )
    yield "</tbody>\n</table>\n</section>\n"


def _plan_note(plan: PlanView) -> str:
    unknown = (
        f" {markup.count(plan.unknown, 'test')} with no recorded duration "
        "count as instant."
        if plan.unknown
        else ""
    )
    return (
        '<p class="note">The split <code>pytest --shard K/N</code> and '
        "<code>crosscache plan</code> make: tests longest first, each to the job "
        "with the least work so far, by median recorded duration.  The sharded "
        f"run would take {esc(markup.seconds(plan.longest))} (no split can take "
        f"less than {esc(markup.seconds(plan.lower_bound))}), the jobs "
        f"{markup.percent(plan.balance)} balanced (mean job time over the "
        "longest).  Each block is a test, in the order a slowest-first run "
        "takes them; the hatched block is the many short tests at the end."
        f"{unknown}</p>\n"
    )
