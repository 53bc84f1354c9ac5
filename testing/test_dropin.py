"""Conftests and plugins that reach into pytest's provider get what pytest gives them.

Each scenario runs once with pytest-crosscache and once with pytest's
builtin provider (``-p no:crosscache``), through the ``twin`` fixture, and
asserts the same output (tests selected, outcomes, warnings), the same exit
code and, where it writes, the same files.
"""

from __future__ import annotations

import pytest

from conftest import Twin

LONG = "x" * 300


class TestUnstorableKeys:
    def test_same_warning_as_pytest(self, twin: Twin) -> None:
        twin.pytester.makepyfile(
            test_keys=f"""
            def test_long(cache):
                cache.set("plugin/{LONG}", 1)
                cache.set("plugin/{LONG}/inner", 1)
                assert cache.get("plugin/{LONG}", "default") == "default"
                assert cache.get("plugin/{LONG}/inner", "default") == "default"
            """
        )
        lines = twin.check("-W", "always::pytest.PytestCacheWarning")
        # The warning names the value's path and points at the caller's line.
        assert any(
            "test_keys.py:2: PytestCacheWarning: cache could not write path" in line
            and "File name too long" in line
            for line in lines
        ), lines
        assert any(
            "test_keys.py:3: PytestCacheWarning: could not create cache path" in line
            for line in lines
        ), lines

    @pytest.mark.parametrize("ignored", [True, False])
    def test_filterwarnings_aimed_at_the_callers_module(
        self, twin: Twin, ignored: bool
    ) -> None:
        pytester = twin.pytester
        pytester.makepyfile(
            helper=f"""
            def store(cache):
                cache.set("plugin/{LONG}", 1)
            """,
            test_filter="""
            import helper

            def test_store(cache):
                helper.store(cache)
            """,
        )
        ignore = "    ignore::pytest.PytestCacheWarning:helper\n" if ignored else ""
        pytester.makeini(f"[pytest]\nfilterwarnings =\n    error\n{ignore}")
        # Tracebacks show each provider's own code; the rest must agree.
        result = twin.run("--tb=no", "-rf")
        result.assert_same()
        if ignored:
            result.ours.assert_outcomes(passed=1)
        else:
            result.ours.assert_outcomes(failed=1)
