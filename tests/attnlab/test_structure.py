"""The package layering: attnlab.lightning_modules <- attnlab.pipeline <- attnlab.tune <- attnlab (the
CLI and the API), and nothing back up; every import names the installed attnlab.* package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from repo import ROOT

LAYERS = ["lightning_modules", "pipeline", "tune", "attnlab"]
BARE = {"lightning_modules", "pipeline", "tune"}  # folders of the repository, never import names


def _layer(module: str) -> str | None:
    """The layer an absolute import names: attnlab.pipeline.x -> pipeline, attnlab.cli -> attnlab."""
    parts = module.split(".")
    if parts[0] != "attnlab":
        return parts[0] if parts[0] in BARE else None
    return parts[1] if len(parts) > 1 and parts[1] in BARE else "attnlab"


def _imports(path: Path) -> list[str]:
    """Modules `path` imports absolutely, at any depth (lazy imports count too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


def _imported_packages(path: Path) -> set[str]:
    return {layer for layer in map(_layer, _imports(path)) if layer}


def _python_files():
    for folder in [*LAYERS, "tests", "benchmarks"]:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_every_import_names_the_installed_package():
    """`import pipeline` works only from a checkout; installed, the code is attnlab.pipeline."""
    offenders = {
        str(path.relative_to(ROOT)): bare
        for path in _python_files()
        if (bare := sorted({m for m in _imports(path) if m.split(".")[0] in BARE}))
    }
    assert offenders == {}


@pytest.mark.parametrize("layer", LAYERS[:-1])
def test_no_import_runs_back_up(layer):
    above = set(LAYERS[LAYERS.index(layer) + 1 :])
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & above)
        for path in sorted((ROOT / layer).rglob("*.py"))
        if _imported_packages(path) & above
    }
    assert offenders == {}, f"{layer} imports from a layer above it: {offenders}"


def test_lightning_modules_runs_without_pipeline_or_tune():
    """Importing every LightningModule and the factory loads neither pipeline nor tune."""
    code = (
        "import sys\n"
        "import attnlab.lightning_modules.detection, attnlab.lightning_modules.segmentation\n"
        "import attnlab.lightning_modules.translation, attnlab.lightning_modules.attention\n"
        "bad = [m for m in sys.modules if m.startswith('attnlab.')]\n"
        "bad = sorted(m for m in bad if m.split('.')[1] != 'lightning_modules')\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_task_registry_feeds_config_cli_and_presets():
    from attnlab.cli import build_parser
    from attnlab.pipeline.config.train import TrainConfig, preset_for
    from attnlab.pipeline.tasks.registry import TASK_NAMES, TASKS

    assert TASK_NAMES == tuple(TASKS) == ("detection", "segmentation", "translation")
    assert set(TrainConfig.model_fields["task"].annotation.__args__) == set(TASK_NAMES)
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    task_flag = next(a for a in train._actions if a.dest == "task")
    assert tuple(task_flag.choices) == TASK_NAMES
    for name, task in TASKS.items():
        assert preset_for(name, "tiny") == task.tiny and task.metric.startswith("val/")


def test_python_dash_m_attnlab_is_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "attnlab", "--help"], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.startswith("usage: attnlab")


def test_the_public_api_is_reachable_from_the_package():
    import attnlab
    from attnlab.lightning_modules.attention import build_attention, register_mechanism

    assert attnlab.build_attention is build_attention and attnlab.register_mechanism is register_mechanism
    assert callable(attnlab.train) and callable(attnlab.sweep) and callable(attnlab.best)
    # Every command that runs or reads an experiment is a function of the same name (attnlab/api.py).
    commands = {"train", "sweep", "resume", "run", "best", "report", "findings", "effects"}
    assert commands <= set(attnlab.__all__) and all(callable(getattr(attnlab, c)) for c in commands)
    with pytest.raises(AttributeError):
        _ = attnlab.nothing_here


def _product_files():
    for folder in LAYERS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_test_hook_in_product_code():
    """Fault injection is a callback only tests attach (`callbacks:` key); product code holds none."""
    offenders = []
    for path in _product_files():
        text = path.read_text()
        if "FailOnce" in text or "ATTNLAB_FAIL_ONCE" in text or "fault_injection" in _imports(path):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def _task_name_comparisons(path: Path, names: set[str]) -> list[int]:
    """Lines where `path` compares something with a task's name (==, !=, in, not in)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for operand in operands:
                values = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
                if any(isinstance(v, ast.Constant) and v.value in names for v in values):
                    lines.append(node.lineno)
    return lines


def test_generic_code_never_asks_which_task_it_runs():
    """Task differences live in the task registry (pipeline/tasks/registry.py) and the task's own files
    (its data modules, its LightningModule): adding a task is one registry entry plus its files."""
    from attnlab.pipeline.tasks.registry import TASKS

    names = set(TASKS)
    owned = {*(ROOT / "lightning_modules" / f"{n}.py" for n in names)}
    owned |= set((ROOT / "pipeline" / "data").rglob("*.py")) | set(
        (ROOT / "pipeline" / "tasks").rglob("*.py")
    )
    offenders = {
        str(path.relative_to(ROOT)): lines
        for path in _product_files()
        if path not in owned and (lines := _task_name_comparisons(path, names))
    }
    assert offenders == {}


def test_a_run_logs_only_its_own_tasks_settings():
    from attnlab.pipeline.config.train import build_train_config
    from attnlab.tune.trial_process import rerun_command

    cfg = build_train_config({"task": "segmentation"})
    logged = cfg.own_settings()
    assert "segmentation" in logged and not {"detection", "translation"} & set(logged)
    assert '"translation"' not in rerun_command(cfg, 1) and '"segmentation"' in rerun_command(cfg, 1)


def test_pipeline_is_sub_packages_by_job():
    """pipeline/ holds packages, one per job (config, tasks, data, training, costs, tracking,
    analysis, export), and no loose module: a new module lands in the package whose job it does."""
    loose = sorted(p.name for p in (ROOT / "pipeline").glob("*.py") if p.name != "__init__.py")
    jobs = sorted(p.name for p in (ROOT / "pipeline").iterdir() if (p / "__init__.py").is_file())
    assert loose == []
    assert jobs == ["analysis", "config", "costs", "data", "export", "tasks", "tracking", "training"]


RUN_LIFE = ("create_run", "set_terminated", "update_run")  # MlflowClient's calls that open or end a run


def test_one_module_owns_a_runs_life():
    """Only pipeline/tracking/runs.py opens, reopens or ends an MLflow run (MlflowClient's
    create_run, update_run, set_terminated; the fluent start_run/end_run), so a run's life is read
    in one file; every other module goes through its RunRole and functions."""
    owner = ROOT / "pipeline" / "tracking" / "runs.py"
    offenders = {}
    for path in _product_files():
        if path == owner:
            continue
        calls = sorted(
            {
                node.func.attr
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in (*RUN_LIFE, "start_run")
            }
        )
        if calls:
            offenders[str(path.relative_to(ROOT))] = calls
    assert offenders == {}


# Where product code may write this process's environment, and why each may.
ENVIRONMENT_WRITERS = {
    "attnlab/cli.py": "the attnlab process's entry point configures its own process (Ray's switch)",
    "pipeline/tracking/runs.py": "a DDP run id for the ranks Lightning starts (they inherit it)",
    "tune/trial_process.py": "puts a reused trial process's environment back as it was",
    "tune/local_services.py": "each embedded Ray worker names its own cluster (RAY_ADDRESS), as it starts",
    "pipeline/tracking/uri.py": "puts back the MLFLOW_TRACKING_URI Lightning's MLflow logger sets",
}
# Where product code may call MLflow's process-wide setters: only to put back what a library set.
FLUENT_RESTORERS = {"pipeline/tracking/uri.py": "puts back the tracking URI Lightning's MLflow logger sets"}
WRITES = {"update", "pop", "setdefault", "clear", "popitem", "__setitem__", "__delitem__"}


def _environment_writes(tree: ast.AST) -> int:
    """How many times the module writes os.environ (item assignment or deletion, or a mutating call)."""

    def is_environ(node) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    count = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            count += sum(isinstance(t, ast.Subscript) and is_environ(t.value) for t in targets)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            mutates = node.func.attr in WRITES and is_environ(node.func.value)
            count += mutates or node.func.attr == "putenv"
    return count


def test_nothing_is_patched_process_wide():
    """No product module writes the process's environment outside the named places, nor touches a
    library's private modules (Ray's `_private`) or sets MLflow's process-wide tracking settings."""
    writers, private, fluent = [], [], []
    for path in _product_files():
        name = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text())
        if _environment_writes(tree) and name not in ENVIRONMENT_WRITERS:
            writers.append(name)
        if any(m.startswith("ray._private") for m in _imports(path)):
            private.append(name)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("set_tracking_uri", "set_experiment", "set_registry_uri")
                and name not in FLUENT_RESTORERS
            ):
                fluent.append(name)
    assert (writers, private, fluent) == ([], [], [])
    assert all(_environment_writes(ast.parse((ROOT / n).read_text())) for n in ENVIRONMENT_WRITERS)


OUTCOME_WORDS = {"finished", "stopped", "interrupted"}  # a trial's outcomes (tune/outcomes.py's Status)
SWEEP_RUN_CALLS = {  # who may open or end a sweep's MLflow runs, by the call
    "open_sweep": {"tune/sweep_run.py"},
    "close_stopped": {"tune/sweep_run.py"},
    "open_trial": {"tune/trainable.py"},  # in the trial's own process
    "finish_run": {"tune/sweep_run.py", "tune/trainable.py"},
}


def test_one_module_decides_a_trials_outcome_and_one_owns_a_sweeps_runs():
    """tune/outcomes.py alone decides what became of a trial (it alone makes a TrialOutcome, and no
    other module of tune/ or attnlab/ compares anything with an outcome's word); tune/sweep_run.py
    alone opens and ends a sweep's runs in the driver (a trial opens and ends its own)."""
    outcome_owner = ROOT / "tune" / "outcomes.py"
    decisions = ROOT / "tune" / "pareto_asha.py"  # "stopped" there is a scheduler's rule, not an outcome
    outcomes, runs = {}, {}
    for path in [*sorted((ROOT / "tune").rglob("*.py")), *sorted((ROOT / "attnlab").rglob("*.py"))]:
        name = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                called = (
                    node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                )
                if called == "TrialOutcome" and path != outcome_owner:
                    outcomes.setdefault(name, []).append(node.lineno)
                if called in SWEEP_RUN_CALLS and name not in SWEEP_RUN_CALLS[called]:
                    runs.setdefault(name, []).append(called)
            if isinstance(node, ast.Compare) and path not in (outcome_owner, decisions):
                words = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)]
                if OUTCOME_WORDS & set(words):
                    outcomes.setdefault(name, []).append(node.lineno)
    assert (outcomes, runs) == ({}, {})


def test_each_command_that_runs_or_reads_an_experiment_calls_its_api_function():
    """attnlab/commands/X.py parses flags and calls attnlab.api.X: the checks live below both, so the
    CLI and `attnlab.X()` from Python cannot drift apart."""
    wanted = {
        "train": {"train"},
        "sweep": {"sweep", "resume"},
        "run": {"run"},
        "best": {"best", "register_best"},
        "report": {"report"},
        "findings": {"findings"},
        "effects": {"effects"},
    }
    missing = {}
    for name, functions in wanted.items():
        tree = ast.parse((ROOT / "attnlab" / "commands" / f"{name}.py").read_text())
        called = {
            node.func.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "api"
        }
        if functions - called:
            missing[name] = sorted(functions - called)
    assert missing == {}
