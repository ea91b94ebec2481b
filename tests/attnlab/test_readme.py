"""The README and the docs pages, tested as written, in what a user installs.

A fresh virtual environment gets the README's runtime install only (`make install`, no test
extras); then every command the README and the pages show runs there, in their order, in one
empty working folder:
- each line of a ```bash block that starts with `attnlab` must exit 0 and, where it ends in
  `# prints: TEXT`, print TEXT (stdout or stderr); a line ending in `# needs: WHAT` names what
  this machine lacks (a cluster, COCO, hours) and is only listed;
- a ```yaml block whose first line is `# file: NAME` is written to NAME (a YAML mapping) first;
- a ```python block runs as a script with the fresh environment's Python.
Two rewrites, both visible here: `--max-epochs N` becomes `--max-epochs 1`, and `../shared/`
(the public data beside the checkout) becomes its absolute path. A training command that, so
rewritten, an earlier step already ran is checked against that run's output. Each test checks
its own step; it runs the steps before it first, so it holds alone and in any order.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from repo import ROOT
from services import clean_env

SHARED = ROOT.parent / "shared"
PAGES = ["README.md", *(f"docs/{p}.md" for p in ("training", "mechanisms", "sweeps", "rankings"))]
PAGES += ["docs/mlflow.md", "docs/clusters.md", "docs/walkthrough.md"]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)
pytestmark = pytest.mark.slow


@dataclass
class Step:
    page: str
    kind: str  # command | file | python
    text: str
    prints: str | None = None
    needs: str | None = None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.kind}:{self.text.splitlines()[0][:60]}"


def _command(page: str, line: str) -> Step:
    needs = re.search(r"#\s*needs:\s*(.+)$", line)
    prints = re.search(r"#\s*prints:\s*(.+?)\s*$", line)
    command = line.split("#", 1)[0].strip()
    return Step(page, "command", command, prints and prints.group(1), needs and needs.group(1))


def documented_steps() -> list[Step]:
    steps = []
    for page in PAGES:
        for lang, body in BLOCK.findall((ROOT / page).read_text()):
            if lang == "bash":
                steps += [_command(page, line.strip()) for line in body.splitlines() if _is_attnlab(line)]
            elif lang == "yaml" and body.startswith("# file:"):
                steps.append(Step(page, "file", body))
            elif lang == "python":
                steps.append(Step(page, "python", body))
    return steps


def _is_attnlab(line: str) -> bool:
    return line.strip().startswith("attnlab ")


def as_run(command: str) -> list[str]:
    """The documented command with this test's two rewrites."""
    command = re.sub(r"--max-epochs \d+", "--max-epochs 1", command)
    command = command.replace("../shared/", f"{SHARED}/")
    return shlex.split(command)


STEPS = documented_steps()


@dataclass
class Ran:
    """What one step did: its output, and why it failed (None: it did what it must)."""

    output: str = ""
    failed: str | None = None


class Walkthrough:
    """The pages' steps run in their order, in one working folder, each once. A test asking for a
    step runs every step before it first, so each test checks its own step whatever order the tests
    run in, and alone too. A page that shows a training command another page showed (the README's
    tour, then the page that explains it) is checked against that run's output: the same command
    (after the rewrites) on a fresh run of its own trains the same thing again."""

    def __init__(self, env: dict, work: Path):
        self.env, self.work = env, work
        self.ran: list[Ran] = []
        self.trained: dict[tuple[str, ...], str] = {}

    def result(self, step: Step) -> Ran:
        while len(self.ran) <= STEPS.index(step):
            self.ran.append(self._run(STEPS[len(self.ran)]))
        return self.ran[STEPS.index(step)]

    def _run(self, step: Step) -> Ran:
        if step.needs:
            return Ran()
        if step.kind == "file":
            name = step.text.splitlines()[0].removeprefix("# file:").strip()
            (self.work / name).write_text(step.text)
            content = yaml.safe_load((self.work / name).read_text())
            ok = isinstance(content, dict) and content
            return Ran(failed=None if ok else f"{name} is not a YAML mapping: {content!r}")
        argv = as_run(step.text) if step.kind == "command" else ["python", "-c", step.text]
        if tuple(argv) in self.trained:
            return Ran(self.trained[tuple(argv)])
        proc = subprocess.run(argv, env=self.env, cwd=self.work, capture_output=True, text=True, timeout=900)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            return Ran(output, f"{step.text}\nexit {proc.returncode}\n{output[-4000:]}")
        if argv[:2] == ["attnlab", "train"]:
            self.trained[tuple(argv)] = output
        if step.prints and step.prints not in output:
            return Ran(output, f"{step.text}: {step.prints!r} not in\n{output[-3000:]}")
        return Ran(output)


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory):
    """(environment, working folder): the README's runtime install in a new venv, nothing more."""
    venv = tmp_path_factory.mktemp("readme") / "venv"
    install = subprocess.run(
        ["make", "-s", "install", f"VENV={venv}", f"PY={sys._base_executable}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]
    env = clean_env(PATH=f"{venv / 'bin'}:{os.environ.get('PATH', '')}", VIRTUAL_ENV=str(venv))
    env.pop("PYTHONPATH", None)
    work = tmp_path_factory.mktemp("readme-work")
    yield env, work
    # ~7 GB of venv (torch's CUDA build) and ~1.6 GB of runs: not kept for the rest of the session.
    shutil.rmtree(venv, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


def test_the_pages_show_every_kind_of_command():
    commands = [s for s in STEPS if s.kind == "command" and not s.needs]
    verbs = {shlex.split(s.text)[1] for s in commands}
    assert {"train", "data", "attention", "sweep", "best", "report", "findings", "submit"} <= verbs
    tasks = {shlex.split(s.text)[3] for s in commands if shlex.split(s.text)[1] == "train"}
    assert tasks == {"detection", "segmentation", "translation"}
    assert all(s.prints for s in commands), [s.text for s in commands if not s.prints]


def test_the_install_is_the_runtime_one(runtime_env):
    env, work = runtime_env
    probe = "import importlib.util as u; print([m for m in ('pytest', 'ruff', 'mmcv') if u.find_spec(m)])"
    out = subprocess.run(["python", "-c", probe], env=env, cwd=work, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.fixture(scope="module")
def walkthrough(runtime_env) -> Walkthrough:
    return Walkthrough(*runtime_env)


@pytest.mark.parametrize("step", STEPS, ids=[s.id for s in STEPS])
def test_documented(step, walkthrough):
    if step.needs:
        pytest.skip(f"needs {step.needs}")
    ran = walkthrough.result(step)
    assert ran.failed is None, ran.failed
