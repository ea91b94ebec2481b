"""How long each command of the README takes, as written: the times the README states come from
this table (tests/attnlab/test_readme.py runs the same commands, but with `--max-epochs 1` and two
tests at a time, so its durations are not the README's).

Every `attnlab` line of the README's bash blocks runs in order in one empty working folder (its YAML
`# file:` blocks written first, `../shared/` made absolute), one at a time, with the `attnlab` beside
this Python; a line marked `# needs:` is listed, not run. Run it on a quiet machine:

    python benchmarks/tour.py
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


def steps(page: Path) -> list[tuple[str, str]]:
    """(kind, text) of the page's steps in order: 'file' (a YAML block to write) or 'command'."""
    out = []
    for lang, body in BLOCK.findall(page.read_text()):
        if lang == "yaml" and body.startswith("# file:"):
            out.append(("file", body))
        elif lang == "bash":
            out += [
                ("command", line.strip()) for line in body.splitlines() if line.strip().startswith("attnlab ")
            ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--page", default="README.md")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    rows = []
    with tempfile.TemporaryDirectory(prefix="attnlab-tour-") as work:
        for kind, text in steps(ROOT / args.page):
            if kind == "file":
                name = text.splitlines()[0].removeprefix("# file:").strip()
                Path(work, name).write_text(text)
                continue
            command = text.split("#", 1)[0].strip()
            if "# needs:" in text:
                rows.append((command, None, "needs: " + text.split("# needs:", 1)[1].strip()))
                continue
            argv = shlex.split(command.replace("../shared/", f"{ROOT.parent / 'shared'}/"))
            started = time.monotonic()
            proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True)
            rows.append((command, time.monotonic() - started, f"exit {proc.returncode}"))
            print(f"{rows[-1][1]:7.1f} s  {command}", file=sys.stderr, flush=True)
    width = min(100, max(len(c) for c, _, _ in rows))
    print(f"| {'command':<{width}} | seconds | |")
    print(f"|{'-' * (width + 2)}|--------:|---|")
    for command, seconds, note in rows:
        shown = command if len(command) <= width else command[: width - 3] + "..."
        print(f"| {shown:<{width}} | {'' if seconds is None else f'{seconds:.1f}'} | {note} |")
    print(f"\n{sum(s for _, s, _ in rows if s is not None):.0f} s in all, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
