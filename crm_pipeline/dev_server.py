"""`make ui`: `dagster dev` that ends within seconds of Ctrl-C or SIGTERM and leaves no process behind.

`dagster dev` starts a webserver, a daemon and code servers (which start run workers) as its children.
Left to itself it does not always stop them: it handles SIGTERM as it handles SIGINT, so where SIGINT is
ignored (a shell's background job, nohup, a service manager) SIGTERM is ignored too; a `sh -c` between make
and it takes make's SIGTERM and dies alone; and when it is killed, its children are told nothing and live on.

So `dagster dev` runs here in a process group of its own, with default signal handling. The first Ctrl-C,
SIGTERM or SIGHUP this process gets is passed on as SIGINT to that whole group: Dagster's own clean
shutdown, exactly what Ctrl-C in a terminal does to it. Whatever in the group is still alive after the
grace period (or at a second signal) is killed. `make ui` `exec`s this process, so make's signals reach it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# Dagster's own shutdown takes 3 s on an idle machine, and 5 to 9 s on a busy 2-core one (its code server
# proxy polls for the end); `make ui` must be gone within 10 s, so what is left after 6 s is ended.
GRACE_SECONDS = 6.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_POLL_SECONDS = 0.2


def dagster_dev_command(host: str, port: int) -> list[str]:
    """The `dagster dev` command line of `make ui` (run from the repository root, beside workspace.yaml)."""
    return [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", host, "-p", str(port)]


def supervise(command: list[str], grace_seconds: float = GRACE_SECONDS) -> int:
    """Run `command` in its own process group until it ends or a stop signal comes; return an exit code:
    0 after a requested stop (its processes all ended, by themselves or killed), else the command's own."""
    received: list[int] = []
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a mask inherited from the starter must not hide them
    for sig in STOP_SIGNALS:  # set before starting: the child then starts with default handling (exec resets it)
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    child = subprocess.Popen(command, process_group=0)
    group = child.pid
    while child.poll() is None and not received:
        time.sleep(_POLL_SECONDS)
    if received:
        print(f"\nstopping Dagster ({signal.Signals(received[0]).name}); forced after {grace_seconds:.0f} s",
              file=sys.stderr, flush=True)
    _signal_group(group, signal.SIGINT)  # also when it ended by itself: its children may not have
    asked = len(received)
    deadline = time.monotonic() + grace_seconds
    while _group_alive(group, child) and time.monotonic() < deadline and len(received) == asked:
        time.sleep(_POLL_SECONDS)
    left = _group_members(group) if _group_alive(group, child) else []
    if left:
        print(f"Dagster had not finished stopping after {grace_seconds:.0f} s; ending its {len(left)} remaining "
              f"process(es): {', '.join(left)}", file=sys.stderr, flush=True)
        _signal_group(group, signal.SIGKILL)
    code = child.wait()
    return 0 if received else code


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


def _group_alive(group: int, child: subprocess.Popen) -> bool:
    child.poll()  # reap our own child, so it does not count as alive once it has ended
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return bool(_group_members(group)) if Path("/proc/self/stat").exists() else True


def _group_members(group: int) -> list[str]:
    """Live processes of the group as `pid name` (zombies are ended, only not yet collected)."""
    if not Path("/proc/self/stat").exists():
        return [f"process group {group}"]
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(f"{stat.parent.name} {text[text.index('(') + 1:text.rindex(')')]}")
    return members


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_pipeline.dev_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--grace-seconds", type=float, default=GRACE_SECONDS)
    args = parser.parse_args(argv)
    return supervise(dagster_dev_command(args.host, args.port), args.grace_seconds)


if __name__ == "__main__":
    sys.exit(main())
