"""The `make ui` supervisor on small stand-in services: a stop signal ends the whole service, in time.

The stand-in is a process with one child, like `dagster dev` and its webserver; the supervisor is started
as `make ui` may be started, from a background job that ignores SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

GRACE = 2.0
SERVICE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline() == "ready\\n"
print(child.pid, flush=True)
time.sleep(120)
"""
OBEDIENT_CHILD = "import time; print('ready', flush=True); time.sleep(120)"
# Ignores both signals Dagster's processes answer (the case of a child still busy shutting down).
STUBBORN_CHILD = ("import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                  "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)")
SUPERVISOR = ("import sys; from crm_pipeline.dev_server import supervise; "
              f"sys.exit(supervise([sys.executable, '-c', sys.argv[1], sys.argv[2]], grace_seconds={GRACE}))")


def alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2:].split()[0] != "Z"


def start(child_code: str) -> tuple[subprocess.Popen, int]:
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, SERVICE, child_code], stdout=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    child_pid = int(supervisor.stdout.readline())
    return supervisor, child_pid


@pytest.fixture
def cleanup():
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("child_code, ends_within", [(OBEDIENT_CHILD, GRACE - 0.5), (STUBBORN_CHILD, GRACE + 2)],
                         ids=["service that stops", "process that does not"])
def test_sigterm_ends_the_service_and_its_children_in_time(child_code, ends_within, cleanup):
    supervisor, child_pid = start(child_code)
    cleanup.append(child_pid)
    started = time.monotonic()
    supervisor.send_signal(signal.SIGTERM)
    code = supervisor.wait(timeout=30)
    while alive(child_pid) and time.monotonic() - started < 30:
        time.sleep(0.05)
    seconds = time.monotonic() - started
    assert code == 0 and not alive(child_pid)
    assert seconds < ends_within, seconds
