"""The package layering: lightning_modules <- pipeline <- tune <- attnlab, and nothing back up."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["lightning_modules", "pipeline", "tune", "attnlab"]


def _imported_packages(path: Path) -> set[str]:
    """Top-level packages `path` imports (absolute imports, at any depth: lazy ones count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


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
        "import lightning_modules.detection, lightning_modules.segmentation, lightning_modules.translation\n"
        "import lightning_modules.attention\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pipeline', 'tune', 'attnlab'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_task_registry_feeds_config_cli_and_presets():
    from attnlab.cli import build_parser
    from pipeline.tasks import TASK_NAMES, TASKS
    from pipeline.train_config import TrainConfig, preset_for

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
    from lightning_modules.attention import build_attention, register_mechanism

    assert attnlab.build_attention is build_attention and attnlab.register_mechanism is register_mechanism
    assert callable(attnlab.train) and callable(attnlab.sweep) and callable(attnlab.best)
    with pytest.raises(AttributeError):
        _ = attnlab.nothing_here
