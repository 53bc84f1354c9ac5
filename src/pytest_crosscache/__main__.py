"""``python -m pytest_crosscache``: the ``crosscache`` command."""

from __future__ import annotations

from pytest_crosscache.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
