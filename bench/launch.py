"""Run pytest in this process, then record its peak memory for bench/run.py.

Usage: python launch.py REPORT.json [pytest arguments...]
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import pytest

if __name__ == "__main__":
    report = Path(sys.argv[1])
    try:
        code = pytest.main(sys.argv[2:])
    finally:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        report.write_text(json.dumps({"maxrss": usage.ru_maxrss}))
    sys.exit(int(code))
