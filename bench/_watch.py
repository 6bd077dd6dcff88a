"""Run a command as a child and watch it: wall seconds, the peak resident memory of its whole process tree, and
the CPU seconds the tree used (so a part's cores used = its CPU seconds / its wall seconds).

`resource.getrusage(RUSAGE_CHILDREN)` reports the largest child so far, not this child's tree, so a sampler
thread sums VmRSS over the child and its descendants from /proc instead. A tree above the guard is killed
(its own process group only), so a large run cannot take a shared machine down with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1024 ** 3


@dataclass
class Watched:
    seconds: float
    peak_rss: int              # bytes, summed over the process tree, highest sample
    returncode: int
    killed_by_guard: bool
    load: tuple[float, float]  # lowest and highest 1-minute load average seen while it ran
    # (epoch seconds, tree RSS bytes, tree CPU seconds so far)
    samples: list[tuple[float, int, float]] = field(default_factory=list, repr=False)

    def peak_between(self, start: float, end: float) -> int:
        """The highest sample taken between two epoch times (0 when none was): a part's own peak."""
        return max((rss for t, rss, _ in self.samples if start <= t <= end), default=0)

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds the tree used between two epoch times (from the first and last sample inside them)."""
        inside = [cpu for t, _, cpu in self.samples if start <= t <= end]
        return inside[-1] - inside[0] if len(inside) > 1 else 0.0

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds of the whole run, as of the last sample (the last quarter second may be missing)."""
        return self.samples[-1][2] if self.samples else 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def failure(self) -> str | None:
        """None when it succeeded, else what happened in words for the table."""
        at = f"after {self.seconds:.0f} s at {self.peak_rss / GIB:.1f} GiB"
        if self.killed_by_guard:
            return f"killed by the --max-rss-gb guard {at}"
        if self.returncode == -signal.SIGKILL:
            return f"SIGKILL (likely the kernel's OOM killer) {at}"
        if self.returncode < 0:
            return f"killed by signal {-self.returncode} {at}"
        if self.returncode:
            return f"failed (exit {self.returncode}) {at}"
        return None


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            kids += [int(k) for k in text.split()]
    except OSError:
        pass
    return kids


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """User and system CPU seconds of one process, all its threads (utime and stime in /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_usage(root: int) -> tuple[int, float]:
    """VmRSS (shared pages count once per process) and CPU seconds, summed over `root` and every descendant."""
    rss, cpu, todo, seen = 0, 0.0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        rss, cpu = rss + _rss(pid), cpu + _cpu(pid)
        todo += _children(pid)
    return rss, cpu


def load_1min() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_watched(cmd: list[str], *, env: dict | None = None, cwd: Path | None = None, max_rss: int,
                log: Path | None = None, interval: float = 0.25) -> Watched:
    """Run `cmd` to completion (or until its tree passes `max_rss` bytes); output goes to `log`."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    peak, killed, loads, samples = 0, False, [load_1min()], []
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak, killed
        ticks = 0
        while not stop.is_set():
            rss, cpu = tree_usage(proc.pid)
            peak = max(peak, rss)
            samples.append((time.time(), rss, cpu))
            if rss > max_rss and not killed:
                killed = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)   # the child's own session: nothing else
                except ProcessLookupError:
                    pass
            ticks += 1
            if ticks % 40 == 0:
                loads.append(load_1min())
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        code = proc.wait()
    finally:
        stop.set()
        sampler.join()
        if log:
            out.close()
    loads.append(load_1min())
    return Watched(time.perf_counter() - started, peak, code, killed, (min(loads), max(loads)), samples)
