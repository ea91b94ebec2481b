"""The CLI run in a fresh interpreter, reporting its exit code and which heavy libraries it imported:
bad input must be answered before any of them loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "lightning", "ray", "mlflow", "torchvision", "pyarrow")

PROBE = """
import json, sys
from attnlab.cli import main
code = main(json.loads(sys.argv[1]))
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"code": code, "heavy": heavy}))
"""


def probe(cwd: Path, argv: list[str], **env: str) -> tuple[dict, str]:
    """Run the CLI in a fresh interpreter: (its exit code and the heavy modules it loaded, its stderr)."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ, **env},
    )
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr
