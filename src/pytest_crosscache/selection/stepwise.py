"""``cache/stepwise`` and the ``--sw`` / ``--sw-skip`` / ``--sw-reset`` options."""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta
from typing import Any

import attrs
import pytest

from pytest_crosscache._keys import STEPWISE_KEY
from pytest_crosscache._warnings import shown_not_raised
from pytest_crosscache._warnings import warn_cache
from pytest_crosscache._xdist import is_xdist_worker
from pytest_crosscache.cache import ABSENT
from pytest_crosscache.cache import DAMAGED
from pytest_crosscache.selection.records import read_record


class InvalidRecord(ValueError):
    """A stored record does not have the expected shape."""


@attrs.frozen
class StepwiseState:
    """What ``--sw`` remembers between sessions (same JSON shape as pytest's)."""

    #: Node id of the test that stopped the last stepwise session.
    last_failed: str | None
    #: How many tests that session selected; a change invalidates the state.
    last_test_count: int | None
    #: ISO timestamp of the last update, shown as the state's age.
    last_cache_date_str: str

    @classmethod
    def empty(cls) -> StepwiseState:
        return cls(None, None, datetime.now().isoformat())

    @property
    def last_cache_date(self) -> datetime:
        """The date of the last update, in local time without a zone.

        pytest writes local times without a zone; a record that carries one
        (edited by hand, written elsewhere) is converted, so it compares
        with ``datetime.now()`` instead of raising.
        """
        date = datetime.fromisoformat(self.last_cache_date_str)
        if date.tzinfo is not None:
            date = date.astimezone().replace(tzinfo=None)
        return date

    @classmethod
    def from_json(cls, data: object) -> StepwiseState:
        """Build a state from stored JSON; :class:`InvalidRecord` says what is wrong."""
        if not isinstance(data, dict):
            raise InvalidRecord(
                f"TypeError: expected a mapping, found {type(data).__name__}"
            )
        for field in ("last_failed", "last_test_count", "last_cache_date_str"):
            if field not in data:
                raise InvalidRecord(f"KeyError: {field!r}")
        last_failed = data["last_failed"]
        count = data["last_test_count"]
        date = data["last_cache_date_str"]
        if last_failed is not None and not isinstance(last_failed, str):
            raise InvalidRecord(
                f"TypeError: last_failed must be a string, not {last_failed!r}"
            )
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int)
        ):
            raise InvalidRecord(
                f"TypeError: last_test_count must be an integer, not {count!r}"
            )
        if not isinstance(date, str):
            raise InvalidRecord(
                f"TypeError: last_cache_date_str must be a string, not {date!r}"
            )
        state = cls(last_failed, count, date)
        try:
            # Also converts a date with a zone, which fails for dates at the
            # ends of the calendar (year 1 in a zone east of UTC).
            state.last_cache_date  # noqa: B018
        except (ValueError, OverflowError) as exc:
            raise InvalidRecord(f"{type(exc).__name__}: {exc}") from None
        return state

    def to_json(self) -> dict[str, Any]:
        return {
            "last_failed": self.last_failed,
            "last_test_count": self.last_test_count,
            "last_cache_date_str": self.last_cache_date_str,
        }


class StepwisePlugin:
    """pytest's ``stepwiseplugin``: stop at the first failure; next time, start from it.

    Like pytest's, it keeps the ``config.cache`` of the moment it is
    created (in ``pytest_configure``, after the conftests' own) and writes
    its position there at the end of the session.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.cache: object = getattr(config, "cache", None)
        self.session: pytest.Session | None = None
        self.report_status: list[str] = []
        self.skip: bool = config.getoption("stepwise_skip")
        self.reset: bool = config.getoption("stepwise_reset")
        with shown_not_raised():
            self.state = self._load()

    def _load(self) -> StepwiseState:
        stored = read_record(self.cache, STEPWISE_KEY)
        # Falsy records (absent, empty) simply mean "no state yet"; a
        # damaged one was reported by _read_record.
        if stored and stored is not ABSENT and stored is not DAMAGED:
            try:
                return StepwiseState.from_json(stored)
            except InvalidRecord as exc:
                self.report_status.append(f"error reading cache, discarding ({exc})")
                warn_cache(
                    f"ignoring {STEPWISE_KEY!r}: {exc}; starting stepwise from scratch"
                )
        return StepwiseState.empty()

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        previous_count = self.state.last_test_count
        self.state = attrs.evolve(self.state, last_test_count=len(items))

        if self.reset:
            self.report_status.append("resetting state, not skipping.")
            self.state = attrs.evolve(self.state, last_failed=None)
            return
        if not self.state.last_failed:
            self.report_status.append("no previously failed tests, not skipping.")
            return
        if previous_count is not None and previous_count != len(items):
            self.report_status.append(
                f"test count changed, not skipping (now {len(items)} tests, "
                f"previously {previous_count})."
            )
            self.state = attrs.evolve(self.state, last_failed=None)
            return

        index = next(
            (
                i
                for i, item in enumerate(items)
                if item.nodeid == self.state.last_failed
            ),
            None,
        )
        if index is None:
            self.report_status.append("previously failed test not found, not skipping.")
            return
        age = datetime.now() - self.state.last_cache_date
        # A date in the future (a clock set back, a record from elsewhere)
        # is no age at all.
        age = timedelta(seconds=max(int(age.total_seconds()), 0))
        self.report_status.append(
            f"skipping {index} already passed items (cache from {age} ago,"
            " use --sw-reset to discard)."
        )
        deselected = items[:index]
        del items[:index]
        config.hook.pytest_deselected(items=deselected)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            if self.skip:
                # --sw-skip forgives exactly one failure, then acts like --sw.
                if report.nodeid == self.state.last_failed:
                    self.state = attrs.evolve(self.state, last_failed=None)
                self.skip = False
            else:
                self.state = attrs.evolve(self.state, last_failed=report.nodeid)
                assert self.session is not None
                self.session.shouldstop = (
                    "Test failed, continuing from this test next run."
                )
        elif report.when == "call" and report.nodeid == self.state.last_failed:
            self.state = attrs.evolve(self.state, last_failed=None)

    def pytest_report_collectionfinish(self) -> list[str] | None:
        if self.config.get_verbosity() >= 0 and self.report_status:
            return [f"stepwise: {message}" for message in self.report_status]
        return None

    def pytest_sessionfinish(self) -> None:
        if is_xdist_worker(self.config):
            return
        self.state = attrs.evolve(
            self.state, last_cache_date_str=datetime.now().isoformat()
        )
        if self.cache is None:
            return
        with shown_not_raised():
            self.cache.set(STEPWISE_KEY, self.state.to_json())  # type: ignore[attr-defined]
