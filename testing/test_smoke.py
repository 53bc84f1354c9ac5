from __future__ import annotations

import pytest

import pytest_crosscache


def test_config_cache_is_ours(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_configure(config):
            config._seen_type = type(config.cache).__module__ + "." + type(config.cache).__name__

        def pytest_report_header(config):
            return "cache type: " + config._seen_type
        """
    )
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["cache type: pytest_crosscache.cache.Cache"])
    result.assert_outcomes(passed=1)


def test_lf_matches_builtin(twin) -> None:
    twin.pytester.makepyfile(
        """
        import pytest
        @pytest.mark.parametrize("i", range(4))
        def test_a(i):
            assert i % 2 == 0
        def test_b():
            pass
        """
    )
    twin.check("-v")
    lines = twin.check("-v", "--lf")
    assert "run-last-failure: rerun previous 2 failures" in lines
    assert pytest_crosscache.__version__
