"""Where the suite's things are, and how a test runs the `attnlab` a user runs.

`ROOT` is the checkout; `HELPERS` this folder, which a trial process needs on its PYTHONPATH to load
tests' callbacks (fault_injection); `ATTNLAB` the console script of the environment the suite runs
in; `run_attnlab` runs it as a user's shell would (no inherited MLflow or Ray targets).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from services import clean_env

ROOT = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).resolve().parent
ATTNLAB = str(Path(sys.executable).with_name("attnlab"))


def run_attnlab(args: list[str], cwd: Path, timeout: int = 900, env: dict | None = None, **extra: str):
    """`attnlab ARGS` in `cwd` to its end, output captured: with `env` as given, else a clean one
    plus `extra`."""
    return subprocess.run(
        [ATTNLAB, *args],
        cwd=cwd,
        env=env if env is not None else clean_env(**extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
