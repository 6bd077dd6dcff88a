"""`dagster dev` (webserver and daemon) as `make ui` runs it, started once for the live tests of this folder.

The service runs under the project's supervisor (crm_pipeline.dev_server, the command `make ui` execs) in
its own session on a free port, on a temporary DAGSTER_HOME holding the project's deploy/dagster.yaml, a
temporary landing folder and a temporary DuckDB warehouse file. The
`flowed_through` fixture drops a small generated data set and waits, through the GraphQL API, until
the sensor's ingest runs and the refresh after them have succeeded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from crm_pipeline.synth import generate
from crm_pipeline_tests.network import free_port

ROOT = Path(__file__).resolve().parents[2]
DAGSTER = ROOT / ".venv" / "bin" / "dagster"
PYTHON = ROOT / ".venv" / "bin" / "python"
INSTANCE_TEMPLATE = ROOT / "deploy" / "dagster.yaml"  # what `make ui` copies into DAGSTER_HOME
START_TIMEOUT = 180  # a cold start imports dagster, pandas, DuckDB and the project on a busy 2-core machine
FLOW_TIMEOUT = 480  # sensor ticks (5 s here, 10 s for the refresh) plus one queued run per file on a busy machine
PEOPLE = 200

RUNS_QUERY = """
query Runs { runsOrError(limit: 200) { __typename ... on Runs { results {
  runId jobName status startTime endTime tags { key value } } } ... on PythonError { message } } }
"""
RUN_ERRORS_QUERY = """
query RunErrors($runId: ID!) { logsForRun(runId: $runId, limit: 1000) { __typename
  ... on EventConnection { events { __typename
    ... on ExecutionStepFailureEvent { stepKey error { message } }
    ... on RunFailureEvent { message } } } } }
"""
WORKSPACE_QUERY = """
query Workspace { workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


@dataclass
class LiveDagster:
    """A running `dagster dev` and the folders it works on."""

    root: Path
    port: int
    env: dict[str, str]
    log_path: Path
    command: list[str] | None = None  # default: the supervisor command line of `make ui`
    sigint_ignored: bool = False  # started as a shell's background job is: SIGINT ignored
    proc: subprocess.Popen | None = None
    exit_code: int | None = None
    leftovers: list[str] = field(default_factory=list)
    signals_unheeded: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def landing(self) -> Path:
        return Path(self.env["CRM_LANDING_DIR"])

    @property
    def crm_home(self) -> Path:
        return Path(self.env["CRM_HOME_DIR"])

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
        assert not payload.get("errors"), payload["errors"]
        return payload["data"]

    def runs(self) -> list[dict]:
        data = self.graphql(RUNS_QUERY)["runsOrError"]
        assert data["__typename"] == "Runs", data
        return data["results"]

    def run_errors(self, run_id: str) -> list[str]:
        events = self.graphql(RUN_ERRORS_QUERY, {"runId": run_id})["logsForRun"].get("events", [])
        return [e.get("message") or f"{e['stepKey']}: {e['error']['message']}" for e in events
                if e["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent")]

    def start(self) -> None:
        started = time.monotonic()
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.command or ui_command(self.port),
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own session, as a terminal's foreground job
            preexec_fn=_sigint_ignored if self.sigint_ignored else _interruptible,
        )
        log.close()
        deadline = started + START_TIMEOUT
        while True:
            assert self.proc.poll() is None, f"dagster dev exited with {self.proc.returncode}:\n{self.log_tail()}"
            assert time.monotonic() < deadline, f"dagster dev not ready in {START_TIMEOUT} s:\n{self.log_tail()}"
            try:
                entries = self.graphql(WORKSPACE_QUERY, timeout=5)["workspaceOrError"]["locationEntries"]
            except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError):
                time.sleep(1)
                continue
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [e["locationOrLoadError"] for e in entries
                          if e["locationOrLoadError"]["__typename"] == "PythonError"]
                assert not errors, errors
                break
            time.sleep(1)
        self.timings["start_seconds"] = round(time.monotonic() - started, 1)

    def stop(self, timeout: float = 60) -> int:
        """SIGINT to the foreground process group, as Ctrl-C in a terminal; wait for every process of the
        service's tree (taken just before) to end."""
        if self.proc is None or self.exit_code is not None:
            return self.exit_code if self.exit_code is not None else 0
        started = time.monotonic()
        tree = process_tree(self.proc.pid)
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 15)):
            try:
                os.killpg(self.proc.pid, sig)  # start_new_session: the group id is the leader's pid
            except ProcessLookupError:
                break
            try:
                self.exit_code = self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                self.signals_unheeded.append(sig.name)
        self.leftovers = wait_for_end(tree, 20)
        kill_all(tree)  # never leave a process behind on a shared machine
        if self.exit_code is None:
            self.exit_code = self.proc.wait(timeout=10)
        self.timings["stop_seconds"] = round(time.monotonic() - started, 1)
        return self.exit_code


def ui_command(port: int) -> list[str]:
    """The command `make ui` execs, on another port."""
    return [str(PYTHON), "-m", "crm_pipeline.dev_server", "--host", "127.0.0.1", "--port", str(port)]


def _interruptible() -> None:
    """Ctrl-C semantics even when pytest itself was started with SIGINT ignored (a background job of a shell)."""
    _no_signal_blocked()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sigint_ignored() -> None:
    _no_signal_blocked()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _no_signal_blocked() -> None:
    """Start as a terminal or a service manager starts a process: with no signal blocked, whatever the mask of
    the test process's forking thread (a child inherits it, and a blocked SIGTERM would never reach make)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


@dataclass(frozen=True)
class Proc:
    """One process as /proc shows it; (pid, start time) names it even if the pid is reused later."""

    pid: int
    started: int
    group: int
    command: str

    def __str__(self) -> str:
        return f"{self.pid} {self.command}"


def _processes() -> dict[int, tuple[Proc, int, str]]:
    """Every process: (Proc, parent pid, state)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # state, ppid, pgrp, ..., starttime is the 20th
        pid = int(stat.parent.name)
        found[pid] = (Proc(pid, int(fields[19]), int(fields[2]), command[:160]), int(fields[1]), fields[0])
    return found


def process_tree(root: int) -> list[Proc]:
    """`root` and all its descendants, now."""
    found = _processes()
    children: dict[int, list[int]] = {}
    for pid, (_, parent, _) in found.items():
        children.setdefault(parent, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in found:
            tree.append(found[pid][0])
            todo.extend(children.get(pid, []))
    return tree


def survivors(tree: list[Proc]) -> list[Proc]:
    """Processes of `tree` still alive (a zombie has ended), and any live process that joined one of its groups."""
    groups = {p.group for p in tree}
    known = {(p.pid, p.started) for p in tree}
    return [proc for proc, _, state in _processes().values() if state != "Z"
            and ((proc.pid, proc.started) in known or proc.group in groups)]


def wait_for_end(tree: list[Proc], seconds: float) -> list[str]:
    """Wait up to `seconds` for every process of `tree` to end; what is still alive then."""
    deadline = time.monotonic() + seconds
    while (left := survivors(tree)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [str(p) for p in left]


def kill_all(tree: list[Proc]) -> None:
    for proc in survivors(tree):
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="package")
def live_dagster(tmp_path_factory) -> LiveDagster:
    if not DAGSTER.exists():
        pytest.skip(f"{DAGSTER} is missing: run `make install` first")
    root = tmp_path_factory.mktemp("live")
    dagster_home, landing, crm_home = root / "dagster_home", root / "data" / "landing", root / "crm_home"
    for folder in (dagster_home, landing, crm_home):
        folder.mkdir(parents=True)
    shutil.copy(INSTANCE_TEMPLATE, dagster_home / "dagster.yaml")  # the project's instance, as `make ui` uses
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "DAGSTER_"))}
    env.update({
        "DAGSTER_HOME": str(dagster_home),
        "CRM_HOME_DIR": str(crm_home),
        "CRM_LANDING_DIR": str(landing),
        "CRM_WAREHOUSE_URL": f"duckdb:///{root / 'warehouse.duckdb'}",
        "CRM_SETTLE_SECONDS": "1",
        "CRM_SENSOR_INTERVAL_SECONDS": "5",
        "FRESHNESS_DAEMON_INTERVAL_SECONDS": "5",  # Dagster's own knob; 30 s by default
        "PATH": f"{DAGSTER.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    })
    live = LiveDagster(root=root, port=free_port(), env=env, log_path=root / "dagster_dev.log")
    try:
        live.start()
        yield live
    finally:
        live.stop()
        assert not live.leftovers, f"processes outlived dagster dev: {live.leftovers}"


def tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}


def will_not_retry(run: dict) -> bool:
    """A failed run the daemon will not run again: a failed step (a data error), or retries used up."""
    if run["status"] not in ("FAILURE", "CANCELED"):
        return False
    run_tags = tags(run)
    return run_tags.get("dagster/will_retry") == "false" or (
        "dagster/will_retry" not in run_tags and run_tags.get("dagster/failure_reason") == "STEP_FAILURE")


@dataclass
class Flow:
    """What was dropped and the runs that brought it through to audiences."""

    files: list[str]
    runs: list[dict]
    today: str

    def successful(self, job: str) -> list[dict]:
        return [r for r in self.runs if r["jobName"] == job and r["status"] == "SUCCESS"]

    def failed(self) -> list[dict]:
        return [r for r in self.runs if r["status"] in ("FAILURE", "CANCELED")]


def through(runs: list[dict], files: list[str]) -> bool:
    """Every file loaded by a successful run, nothing more queued, and a successful refresh after the last load."""
    loaded = [r for r in runs if r["jobName"] == "ingest_job" and r["status"] == "SUCCESS"]
    busy = [r for r in runs if r["status"] not in ("SUCCESS", "FAILURE", "CANCELED")]
    refreshed = [r for r in runs if r["jobName"] == "refresh_after_ingest" and r["status"] == "SUCCESS"]
    return (sorted({tags(r).get("crm/path") for r in loaded}) == files and not busy and bool(refreshed)
            and max(r["startTime"] for r in refreshed) >= max(r["endTime"] for r in loaded))


@pytest.fixture(scope="package")
def flowed_through(live_dagster: LiveDagster) -> Flow:
    """Drop a generated data set into the landing folder; wait for the sensor's runs and the refresh."""
    live = live_dagster
    today = datetime.now(timezone.utc).date().isoformat()
    generated = live.root / "generated"
    generate(generated, people=PEOPLE, brands=1, days=30, seed=5, end_date=today)
    # truth/ beside the landing folder: the identity asset then reports precision and recall against it
    shutil.move(generated / "truth", live.landing.parent / "truth")
    files = sorted(p.relative_to(generated / "landing").as_posix() for p in (generated / "landing").rglob("*")
                   if p.is_file())
    started, dropped_at = time.monotonic(), time.time()
    for relative in files:  # each file appears whole (rename), as a careful uploader delivers it
        target = live.landing / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(generated / "landing" / relative, target)

    deadline = started + FLOW_TIMEOUT
    while True:
        runs = live.runs()
        hopeless = [r for r in runs if will_not_retry(r)]
        assert not hopeless, {r["runId"]: (r["jobName"], live.run_errors(r["runId"])) for r in hopeless}
        if through(runs, files):
            break
        assert time.monotonic() < deadline, (
            f"not through in {FLOW_TIMEOUT} s: {[(r['jobName'], r['status']) for r in runs]}\n{live.log_tail()}")
        time.sleep(2)
    live.timings["drop_to_audiences_seconds"] = round(time.monotonic() - started, 1)
    first = min(r["startTime"] for r in runs if r["jobName"] == "ingest_job" and r["startTime"])
    live.timings["drop_to_first_ingest_run_start_seconds"] = round(first - dropped_at, 1)
    return Flow(files=files, runs=runs, today=today)
