"""pytest plugin of bench/suite_cpu.py: each test's CPU (its process's, and its waited children's) and wall time,
one JSON line per test into $SUITE_CPU_OUT/<pid>.jsonl (a module's fixtures count in its first test)."""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

from bench._common import cpu_seconds

_started: dict[str, tuple[float, float, float]] = {}


def pytest_runtest_protocol(item, nextitem):
    _started[item.nodeid] = (cpu_seconds(), cpu_seconds(resource.RUSAGE_CHILDREN), time.monotonic())


def pytest_runtest_logfinish(nodeid, location):
    if nodeid not in _started:
        return
    own, children, wall = _started.pop(nodeid)
    line = {"id": nodeid, "self": cpu_seconds() - own,
            "children": cpu_seconds(resource.RUSAGE_CHILDREN) - children, "wall": time.monotonic() - wall}
    with (Path(os.environ["SUITE_CPU_OUT"]) / f"{os.getpid()}.jsonl").open("a") as out:
        out.write(json.dumps(line) + "\n")
