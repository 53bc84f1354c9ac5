"""The HTML report: its view model, its escaping, the command, and the page in Chromium."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import attrs
import pytest

from chromium import Chromium
from chromium import require_chromium
from history_gen import START
from history_gen import Planted
from history_gen import generate
from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.backends.protocol import Backend
from pytest_crosscache.cli import main
from pytest_crosscache.history.flaky import classify
from pytest_crosscache.history.model import FAILED
from pytest_crosscache.history.model import PASSED
from pytest_crosscache.history.model import History
from pytest_crosscache.history.model import Run
from pytest_crosscache.history.model import TestHistory
from pytest_crosscache.history.store import record_run
from pytest_crosscache.report import assets
from pytest_crosscache.report.data import Report
from pytest_crosscache.report.data import build_plan
from pytest_crosscache.report.data import build_report
from pytest_crosscache.report.html import render
from pytest_crosscache.report.markup import esc
from pytest_crosscache.scheduling.plan import ShardPlan
from pytest_crosscache.scheduling.plan import forecast

RUNS = 20
#: When the generated reports are made: a day after the last run.
NOW = START + (RUNS + 1) * 86400

#: Node ids no page may trust: markup, quotes, entities, controls, bidi
#: overrides, lone surrogates, non-Latin text.
HOSTILE = (
    "test_x.py::test_a[<script>window.pwned = 1</script>]",
    'test_x.py::test_b["><img src=x onerror="window.pwned = 2">]',
    "test_x.py::test_c['single' &amp; &lt;tag&gt; `tick`]",
    "test_x.py::test_d[\u202egnirts desrever\u202c]",
    "test_x.py::test_e[nul\x00esc\x1b[31m]",
    "test_x.py::test_f[\ud800 lone surrogate]",
    "test_ü.py::test_g[日本語-😀-\u0301]",
    "test_x.py::test_h[</code></td></tr></table><h1>broken</h1>]",
)


#: Characters that reorder text: a node id must show as it is.
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def visible(nodeid: str) -> str:
    """The text a node id shows as on the page (controls and surrogates spelled out)."""
    out = []
    for char in nodeid:
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF or char in BIDI:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


@pytest.fixture(scope="module")
def generated() -> tuple[History, Planted]:
    return generate(tests=400, runs=RUNS, seed=1)


def plan_jobs(durations: dict[str, float], shards: int) -> tuple[tuple[str, ...], ...]:
    """The jobs the command draws: the scheduler's own plan."""
    nodeids = sorted(durations)
    return ShardPlan.build(nodeids, [durations[n] for n in nodeids], shards).tests


def make_report(history: History, **options: object) -> Report:
    medians = {
        nodeid: seconds
        for nodeid, test in history.tests.items()
        if (seconds := test.median_duration()) is not None
    }
    return build_report(
        history,
        verdicts=classify(history),
        jobs=plan_jobs(medians, 4),
        source=".pytest_cache",
        generated=NOW,
        **options,  # type: ignore[arg-type]
    )


class Sections(HTMLParser):
    """The node ids each section of a page lists, in order, as the browser reads them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: dict[str, list[str]] = {}
        self._section = ""
        self._in_id = False
        self._text: list[str] = []
        self.scripts = 0
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section":
            self._section = found.get("id") or ""
        elif tag == "script":
            self.scripts += 1
        elif tag == "code" and found.get("class") == "id" and self._section:
            self._in_id = True
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "code" and self._in_id:
            self._in_id = False
            self.ids.setdefault(self._section, []).append("".join(self._text))

    def handle_data(self, data: str) -> None:
        if self._in_id:
            self._text.append(data)


# --- the view model ----------------------------------------------------------


class TestViewModel:
    def test_sections_find_the_planted_tests(
        self, generated: tuple[History, Planted]
    ) -> None:
        history, planted = generated
        report = make_report(history)
        assert report.flaky is not None
        assert {row.nodeid for row in report.flaky.rows} == set(planted.flaky)
        rates = [row.flip_rate for row in report.flaky.rows]
        assert rates == sorted(rates, reverse=True)
        assert [row.nodeid for row in report.failing.rows] == list(planted.failing)
        assert [row.nodeid for row in report.slowest.rows[:5]] == list(planted.slowest)
        assert report.summary.tests == 400
        assert report.summary.runs == RUNS
        assert report.summary.new == 1
        assert report.summary.flaky == len(planted.flaky)
        assert report.summary.failing == len(planted.failing)

    def test_failing_since_the_commit_that_broke_it(
        self, generated: tuple[History, Planted]
    ) -> None:
        history, _ = generated
        report = make_report(history)
        runs = report.runs
        for row in report.failing.rows:
            test = history.tests[row.nodeid]
            assert row.since is not None
            assert row.streak == len(test.outcomes) - test.outcomes.rindex(PASSED) - 1
            assert row.since.id == test.run_ids[-row.streak]
            assert not row.always
            # The strip ends with exactly the streak's failures.
            letters = "".join(cell.outcome for cell in row.strip if cell)
            assert letters.endswith(FAILED * row.streak)
            assert len(row.strip) == len(runs)

    def test_top_limits_rows_and_counts_the_rest(
        self, generated: tuple[History, Planted]
    ) -> None:
        history, _ = generated
        report = make_report(history, top=2, columns=5)
        assert report.flaky is not None
        assert len(report.flaky.rows) == 2
        assert report.flaky.hidden == report.flaky.total - 2 > 0
        assert len(report.slowest.rows) == 2
        assert report.slowest.total == 400
        assert len(report.runs) == 5
        assert all(len(row.strip) == 5 for row in report.failing.rows)
        # The newest runs, in order.
        assert [run.started for run in report.runs] == sorted(
            run.started for run in history.runs.values()
        )[-5:]

    def test_slower_test_has_a_rising_trend(
        self, generated: tuple[History, Planted]
    ) -> None:
        history, planted = generated
        rows = {row.nodeid: row for row in make_report(history).slowest.rows}
        slower = rows[planted.slower]
        assert slower.trend is not None
        assert slower.trend > 1.5
        assert slower.changed
        steady = rows[planted.slowest[0]]
        assert steady.trend is not None
        assert not steady.changed

    @pytest.mark.parametrize("option", ["top", "columns"])
    def test_bad_limits(self, generated: tuple[History, Planted], option: str) -> None:
        with pytest.raises(ValueError, match=f"{option} must be at least 1, not 0"):
            build_report(generated[0], **{option: 0})  # type: ignore[arg-type]

    def test_without_verdicts_or_plan(self, generated: tuple[History, Planted]) -> None:
        report = build_report(generated[0])
        assert report.flaky is None
        assert report.plan is None
        assert report.summary.flaky is None
        assert report.summary.new is None
        page = render(report)
        assert 'id="flaky"' not in page
        assert 'id="shards"' not in page
        assert 'id="slowest"' in page

    def test_empty_history(self) -> None:
        report = build_report(History.empty(), verdicts={}, jobs=[[], []])
        assert report.summary.last_run is None
        assert report.summary.slowest is None
        page = render(report)
        assert "No runs are recorded in this cache yet" in page


class TestShardPlan:
    def test_lanes_are_the_schedulers_plan(
        self, generated: tuple[History, Planted]
    ) -> None:
        history, _ = generated
        durations = {
            nodeid: seconds
            for nodeid, test in history.tests.items()
            if (seconds := test.median_duration()) is not None
        }
        plan = build_plan(plan_jobs(durations, 3), durations)
        expected = forecast(durations, 3)
        assert [lane.seconds for lane in plan.lanes] == pytest.approx(expected.loads)
        assert [lane.tests for lane in plan.lanes] == list(expected.counts)
        assert plan.lower_bound == pytest.approx(expected.lower_bound)
        assert plan.longest == pytest.approx(expected.makespan)

    def test_lanes(self) -> None:
        durations = {"big.py::a": 10.0, "big.py::b": 6.0}
        durations.update({f"small.py::t{i}": 0.01 for i in range(300)})
        jobs = [
            ["big.py::a", *[f"small.py::t{i}" for i in range(300)]],
            ["big.py::b", "new.py::x"],
        ]
        plan = build_plan(jobs, durations, segments=5)
        first, second = plan.lanes
        assert plan.unknown == 1
        assert first.tests == 301
        assert first.seconds == pytest.approx(13.0)
        assert first.segments[0].label == "big.py::a"
        # The small tests are one block, after the big one.
        assert first.segments[-1].tests == 300
        assert first.segments[-1].start == pytest.approx(10.0)
        assert first.segments[-1].seconds == pytest.approx(3.0)
        assert [s.label for s in second.segments] == ["big.py::b", ""]
        assert plan.longest == pytest.approx(13.0)
        assert plan.balance == pytest.approx((13.0 + 6.0) / 2 / 13.0)


# --- escaping ----------------------------------------------------------------


def hostile_history() -> History:
    runs = {
        f"r{i}": Run(f"r{i}", START + i * 3600, '"><b>rev</b>', True, 10.0, 9, 2)
        for i in range(6)
    }
    tests = {}
    for index, nodeid in enumerate(HOSTILE):
        # Flaky on one CI revision, failing in the last run, and slow.
        outcomes = "PFPFPF" if index % 2 else "FPFPFF"
        tests[nodeid] = TestHistory(
            nodeid, outcomes, tuple(float(index + 1) for _ in range(6)), tuple(runs)
        )
    return History(runs=runs, tests=tests)


class TestEscaping:
    def test_hostile_ids_stay_text(self) -> None:
        page = render(make_report(hostile_history(), title="<i>title</i>"))
        parsed = Sections(page)
        assert parsed.scripts == 1  # ours, and nothing else
        for section in ("flaky", "failing", "slowest"):
            assert sorted(parsed.ids[section]) == sorted(map(visible, HOSTILE))
        assert "<script>window" not in page
        assert "<img" not in page
        assert "<b>rev</b>" not in page
        assert "<i>title</i>" not in page
        page.encode("utf-8")  # no lone surrogate left

    def test_esc(self) -> None:
        assert esc("<a href=\"x\" title='y'>&</a>") == (
            "&lt;a href=&quot;x&quot; title=&#x27;y&#x27;&gt;&amp;&lt;/a&gt;"
        )
        assert esc("a\x00b\x1b\x7f\ud800") == "a\\x00b\\x1b\\x7f\\ud800"
        assert esc("日本\u05d0") == "日本\u05d0"
        assert esc("a\u202eb\u2066c") == "a\\u202eb\\u2066c"

    def test_the_page_allows_only_its_own_style_and_script(self) -> None:
        page = render(make_report(hostile_history()))
        policy = assets.CONTENT_SECURITY_POLICY
        assert f'content="{policy}"' in page
        assert "default-src 'none'" in policy
        assert f"<style>{assets.CSS}</style>" in page
        assert f"<script>{assets.JS}</script>" in page
        # No attribute that CSP would block: inline styles and handlers.
        assert re.search(r"<[^>]*\s(style|on\w+)=", page) is None

    def test_rendering_is_pure(self, generated: tuple[History, Planted]) -> None:
        history, _ = generated
        assert render(make_report(history)) == render(make_report(history))


# --- the command -------------------------------------------------------------


def record(where: Path | Backend, history: History) -> None:
    """Store ``history`` the way pytest sessions would have, run by run."""
    backend = DirectoryBackend(where) if isinstance(where, Path) else where
    for run in sorted(history.runs.values(), key=lambda run: run.started):
        results = {}
        for test in history.tests.values():
            if run.id in test.run_ids:
                at = test.run_ids.index(run.id)
                results[test.nodeid] = (test.outcomes[at], test.durations[at])
        record_run(backend, run, results)


def crosscache_process(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as a CI job runs it: a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_crosscache", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTEST_CACHE_BACKEND": ""},
    )


@attrs.frozen
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def crosscache(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """The command in this process (a fraction of the time of a new one)."""
    monkeypatch.delenv("PYTEST_CACHE_BACKEND", raising=False)

    def run(cwd: Path, *args: str) -> Done:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse's own errors
            status = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Done(status, out, err)

    return run


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose cache holds a generated history of 120 tests over 8 runs."""
    root = tmp_path_factory.mktemp("project")
    (root / "pytest.ini").write_text("[pytest]\n")
    history, _ = generate(tests=120, runs=8, seed=3)
    record(root / ".pytest_cache", history)
    return root


class TestCommand:
    def test_writes_the_page(self, project: Path, tmp_path: Path, crosscache) -> None:
        out = tmp_path / "report.html"
        done = crosscache(project, "report", "--html", str(out), "--shards", "3")
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        assert done.stdout.startswith(f"wrote {out} (")
        history, planted = generate(tests=120, runs=8, seed=3)
        red = [t.nodeid for t in history.tests.values() if t.outcomes[-1] == FAILED]
        assert set(planted.failing) <= set(red)
        assert f"120 tests, 8 runs, {len(red)} failing now, 5 flaky" in done.stdout
        parsed = Sections(out.read_text(encoding="utf-8"))
        assert sorted(parsed.ids["failing"]) == sorted(red)
        assert "Shard plan for 3 jobs" in out.read_text(encoding="utf-8")
        assert f"<title>Test history of {project.name}</title>" in out.read_text(
            encoding="utf-8"
        )

    def test_to_stdout_without_plan(self, project: Path) -> None:
        done = crosscache_process(
            project,
            "report",
            "--html",
            "-",
            "--shards",
            "0",
            "--top",
            "3",
            "--title",
            "T&T",
        )
        assert done.returncode == 0, done.stderr
        assert "<title>T&amp;T</title>" in done.stdout
        assert 'id="shards"' not in done.stdout
        assert len(Sections(done.stdout).ids["slowest"]) == 3
        assert "…and 117 more timed tests, not shown" in done.stdout

    def test_no_history_yet(self, tmp_path: Path, crosscache) -> None:
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
        done = crosscache(tmp_path, "report", "--html", "r.html")
        assert done.returncode == 0, done.stderr
        assert "0 tests, 0 runs, 0 failing now, 0 flaky" in done.stdout
        assert "No runs are recorded" in (tmp_path / "r.html").read_text(
            encoding="utf-8"
        )

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (
                ["--top", "0"],
                "argument --top: expected a whole number of 1 or more, not '0'",
            ),
            (
                ["--shards", "x"],
                "argument --shards: expected a whole number of 1 or more, not 'x'",
            ),
            ([], "the following arguments are required: --html"),
        ],
    )
    def test_bad_arguments(
        self, tmp_path: Path, args: list[str], message: str, crosscache
    ) -> None:
        html = ["--html", "r.html"] if args else []
        done = crosscache(tmp_path, "report", *html, *args)
        assert done.returncode == 2
        assert message in done.stderr
        assert not (tmp_path / "r.html").exists()

    def test_unwritable_path(self, project: Path, tmp_path: Path, crosscache) -> None:
        target = tmp_path / "missing-dir" / "r.html"
        done = crosscache(project, "report", "--html", str(target))
        assert done.returncode == 1
        assert done.stderr.startswith(
            f"crosscache: error: cannot write the report to {target}: "
        )
        assert "Traceback" not in done.stderr

    def test_damaged_history_is_named_and_skipped(
        self, tmp_path: Path, crosscache
    ) -> None:
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
        history, _ = generate(tests=40, runs=6, seed=4)
        record(tmp_path / ".pytest_cache", history)
        runs_file = tmp_path / ".pytest_cache" / "v" / "crosscache" / "history" / "runs"
        runs_file.write_text("{not json")
        done = crosscache(tmp_path, "report", "--html", "r.html")
        assert done.returncode == 0, done.stderr
        assert "crosscache/history/runs" in done.stderr
        assert "40 tests" in done.stdout


def test_on_redis(
    tmp_path: Path, crosscache, redis_server, redis_namespace: str
) -> None:
    """Any backend the command can open: here another machine's Redis history."""
    from pytest_crosscache.backends.redis import RedisBackend
    from redis_server import PASSWORD

    (tmp_path / "pytest.ini").write_text(
        f"[pytest]\ncache_namespace = {redis_namespace}\n"
    )
    history, planted = generate(tests=40, runs=6, seed=5)
    backend = RedisBackend.from_url(
        redis_server.url,
        namespace=redis_namespace,
        cachedir=tmp_path / "other-machine" / ".pytest_cache",
    )
    record(backend, history)
    done = crosscache(
        tmp_path, "--backend", redis_server.url, "report", "--html", "r.html"
    )
    assert done.returncode == 0, done.stderr
    assert "40 tests, 6 runs" in done.stdout
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert set(Sections(page).ids["flaky"]) == set(planted.flaky)
    assert f"namespace &#x27;{redis_namespace}&#x27;" in page
    assert PASSWORD not in page + done.stdout + done.stderr
    assert not (tmp_path / ".pytest_cache").exists()


def test_after_real_sessions(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, crosscache
) -> None:
    """Three CI sessions of one commit, recorded by the plugin, then the page."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_a="""
        from pathlib import Path

        def test_flaky():
            counter = Path("attempts")
            attempt = int(counter.read_text()) + 1 if counter.exists() else 1
            counter.write_text(str(attempt))
            assert attempt != 2

        def test_broken():
            assert 0

        def test_fine():
            pass
        """
    )
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    for failed in (1, 2, 1, 1):  # test_flaky fails in the second session
        pytester.runpytest().assert_outcomes(passed=3 - failed, failed=failed)
    done = crosscache(pytester.path, "report", "--html", "r.html", "--shards", "2")
    assert done.returncode == 0, done.stderr
    assert "3 tests, 4 runs, 1 failing now, 1 flaky" in done.stdout
    page = (pytester.path / "r.html").read_text(encoding="utf-8")
    ids = Sections(page).ids
    assert ids["flaky"] == ["test_a.py::test_flaky"]
    assert ids["failing"] == ["test_a.py::test_broken"]
    assert sorted(ids["slowest"]) == sorted(
        f"test_a.py::test_{name}" for name in ("flaky", "broken", "fine")
    )
    assert "Shard plan for 2 jobs" in page
    assert "failed 1 of the last 4 runs on commit aaaaaaa" in page


# --- in a real browser -------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    binary = require_chromium()
    with Chromium(binary, tmp_path_factory.mktemp("chromium-profile")) as browser:
        yield browser


def ids_in(browser: Chromium, section: str) -> list[str]:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll('#{section} tbody code.id'), e => e.textContent)"
    )


class TestInChromium:
    def test_loads_offline_and_lists_the_tests(
        self, browser: Chromium, generated: tuple[History, Planted], tmp_path: Path
    ) -> None:
        history, planted = generated
        page = tmp_path / "report.html"
        page.write_text(render(make_report(history)), encoding="utf-8")
        load = browser.load(page)
        assert load.errors == []
        assert load.requests == [page.resolve().as_uri()]
        assert set(ids_in(browser, "flaky")) == set(planted.flaky)
        assert ids_in(browser, "slowest")[:5] == list(planted.slowest)
        assert ids_in(browser, "failing") == list(planted.failing)
        # Fits a laptop screen: no sideways scrolling at 1366 px.
        assert browser.evaluate("document.documentElement.scrollWidth") <= browser.width
        # Each strip cell says what it is without colour, and where on hover.
        cell = browser.evaluate(
            "(c => [c.textContent, c.title])(document.querySelector('#failing .o-F'))"
        )
        assert cell[0] == "F"
        assert cell[1].startswith("run ")
        assert "failed in" in cell[1]

    def test_hostile_ids_are_text_in_the_dom(
        self, browser: Chromium, tmp_path: Path
    ) -> None:
        page = tmp_path / "hostile.html"
        page.write_text(render(make_report(hostile_history())), encoding="utf-8")
        load = browser.load(page)
        assert load.errors == []
        assert load.requests == [page.resolve().as_uri()]
        assert browser.evaluate("typeof window.pwned") == "undefined"
        assert browser.evaluate("document.querySelectorAll('img, h1').length") == 1
        assert sorted(ids_in(browser, "slowest")) == sorted(map(visible, HOSTILE))

    def test_sorting_and_filtering(
        self, browser: Chromium, generated: tuple[History, Planted], tmp_path: Path
    ) -> None:
        history, planted = generated
        page = tmp_path / "report.html"
        page.write_text(render(make_report(history)), encoding="utf-8")
        assert browser.load(page).errors == []
        before = ids_in(browser, "slowest")
        # Median is sorted descending already: one click sorts it ascending.
        browser.evaluate(
            "document.querySelector('#t-slowest th:nth-child(2) button').click()"
        )
        assert ids_in(browser, "slowest") == before[::-1]
        browser.evaluate(
            "(i => { i.value = 'MOD_0000.PY::TEST_CASE_31'; i.dispatchEvent(new Event('input')); })"
            "(document.querySelector('input[data-table=t-slowest]'))"
        )
        shown = browser.evaluate(
            "Array.from(document.querySelectorAll('#t-slowest tbody tr:not([hidden]) code'),"
            " e => e.textContent)"
        )
        assert shown == [planted.slowest[1]]

    def test_readable_without_javascript(
        self, browser: Chromium, generated: tuple[History, Planted], tmp_path: Path
    ) -> None:
        history, planted = generated
        page = tmp_path / "report.html"
        page.write_text(render(make_report(history)), encoding="utf-8")
        browser.call("Emulation.setScriptExecutionDisabled", session=True, value=True)
        try:
            assert browser.load(page).errors == []
        finally:
            browser.call(
                "Emulation.setScriptExecutionDisabled", session=True, value=False
            )
        assert set(ids_in(browser, "flaky")) == set(planted.flaky)
        # The filter boxes need the script: without it they stay hidden.
        assert browser.evaluate(
            "Array.from(document.querySelectorAll('input.filter')).every(i => i.hidden)"
        )
        assert browser.evaluate("document.querySelectorAll('th button').length") == 0

    def test_dark_light_and_print(
        self, browser: Chromium, generated: tuple[History, Planted], tmp_path: Path
    ) -> None:
        history, _ = generated
        page = tmp_path / "report.html"
        page.write_text(render(make_report(history)), encoding="utf-8")
        assert browser.load(page).errors == []
        background = "getComputedStyle(document.body).backgroundColor"
        nav = "getComputedStyle(document.querySelector('nav')).display"
        try:
            browser.set_color_scheme("light")
            assert browser.evaluate(background) == "rgb(255, 255, 255)"
            browser.set_color_scheme("dark")
            assert browser.evaluate(background) == "rgb(15, 19, 24)"
            browser.call(
                "Emulation.setEmulatedMedia",
                session=True,
                media="print",
                features=[{"name": "prefers-color-scheme", "value": "dark"}],
            )
            # Printing is light whatever the screen, and drops the controls.
            assert browser.evaluate(background) == "rgb(255, 255, 255)"
            assert browser.evaluate(nav) == "none"
        finally:
            browser.call(
                "Emulation.setEmulatedMedia", session=True, media="", features=[]
            )
