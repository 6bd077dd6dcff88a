"""A throwaway PostgreSQL server for tests: initdb and pg_ctl on a temporary folder and free port.

Debian's `postgresql` package provides the binaries (`.ci/run` installs it). initdb refuses to
run as root, so as root the server runs as the unprivileged `postgres` OS user the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from crm_pipeline_tests.network import free_port

DATABASE = "crm"


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    run_as: str | None  # the OS user the server runs as, when we are root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        # No JIT and no parallel workers: the tests' queries are small, and three test workers share two cores
        # (the parity module: 102 -> 93 CPU s).
        for attempt in range(3):  # the free port may be taken between choosing it and binding it
            options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100 -c jit=off "
                       "-c max_parallel_workers_per_gather=0")
            try:
                self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.root / "server.log"),
                          "-w", "-t", "60", "start")
                break
            except RuntimeError:
                if attempt == 2 or (self.data_dir / "postmaster.pid").exists():
                    raise
                self.port = free_port()
        self.create_database(DATABASE)

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(self.url("postgres"))
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PostgresServer:
    """Start a server, or raise LookupError saying why it cannot be started here."""
    bin_dir = find_binaries()
    if bin_dir is None:
        raise LookupError("PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; "
                          "install Debian's `postgresql` package (.ci/run does)")
    try:
        import psycopg2  # noqa: F401
    except ImportError as exc:
        raise LookupError(f"psycopg2 is not installed ({exc}); install the project's test extra") from None
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise LookupError("running as root and there is no `postgres` OS user to run the server as "
                              "(Debian's postgresql package creates it)") from None
        if not shutil.which("runuser"):
            raise LookupError("running as root and `runuser` is missing to start the server as `postgres`")
        run_as = "postgres"
    root = Path(tempfile.mkdtemp(prefix="crm-pg-"))  # under /tmp: pytest's own tmp folders are root-only
    if run_as:
        user = pwd.getpwnam(run_as)
        os.chown(root, user.pw_uid, user.pw_gid)
    server = PostgresServer(bin_dir=bin_dir, root=root, port=free_port(), run_as=run_as)
    try:
        server.start()
    except Exception as exc:
        log = root / "server.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        if (server.data_dir / "postmaster.pid").exists():  # started, then failed: do not leave it running
            try:
                server.stop()
            except (RuntimeError, subprocess.SubprocessError):
                pass
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc}\n{detail}") from None
    return server
