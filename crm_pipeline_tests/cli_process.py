"""`crm-pipeline` as a user runs it: a child process of this venv's Python, its output captured."""

from __future__ import annotations

import subprocess
import sys


def cli(*args: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    """`crm-pipeline ARGS` in a child process with `env`; stdout and stderr captured as text."""
    return subprocess.run([sys.executable, "-m", "crm_pipeline.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
