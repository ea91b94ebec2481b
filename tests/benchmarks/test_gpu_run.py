"""benchmarks/gpu_run.sh --dry-run: the GPU call's script, every step at tiny sizes on the CPU,
so the one call on the GPU machine cannot fail on a typo (issue #27)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from repo import ROOT
from services import clean_env

pytestmark = pytest.mark.slow
DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.mark.skipif(not (DATASETS / "camvid").is_dir(), reason="needs ../shared/datasets/camvid")
def test_the_gpu_script_runs_every_step_dry_on_a_cpu(tmp_path):
    bin_dir = Path(sys.executable).parent
    env = clean_env(
        OUT=str(tmp_path),
        PYTHON=sys.executable,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        ATTNLAB_DATASETS=str(DATASETS),
    )
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_run.sh"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = [line for line in proc.stdout.splitlines() if line.startswith("step ")]
    assert [s.split(":")[0] for s in steps] == [
        "step a-correctness",
        "step b-attention",
        "step c-train-step",
        "step d-mini-study",
    ], proc.stdout[-3000:]
    assert all(": exit 0 after" in s for s in steps), "\n".join(steps)
    rows = json.loads((tmp_path / "train_step.json").read_text())
    assert {r["task"] for r in rows} == {"detection", "segmentation", "translation"}
    assert all(r["step_ms"] > 0 and r["peak_MiB"] > 0 for r in rows)
    mini = (tmp_path / "d-mini-study.txt").read_text()
    assert "segmentation-wo-s0: finished" in mini and "segmentation-1000-s0: finished" in mini, mini
    findings = (tmp_path / "mini" / "findings.txt").read_text()
    assert "1000 vs w/o" in findings and "no finished runs of 1000" not in findings, findings
    assert (tmp_path / "mini" / "effects.txt").read_text().startswith("Effects of the terms")


def test_the_gpu_mini_study_shortens_the_gpu_preset_into_valid_trials_seed_by_seed(monkeypatch, tmp_path):
    """What step d trains on the GPU, checked here: the gpu size's 40-epoch schedule cut to 3
    epochs keeps valid learning-rate steps, and a deadline would cut whole seeds."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.setenv("ATTNLAB_DATASETS", str(DATASETS))
    import gpu_mini

    specs = ["w/o", "1000", "0100", "deform"]
    args = SimpleNamespace(
        preset="mini-segmentation",
        size="gpu",
        experiment="gpu-mini",
        max_epochs=3,
        specs=specs,
        seeds=[0, 1],
        threads=2,
        store=tmp_path,
    )
    commands = gpu_mini.trial_commands(args, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert [key.rsplit("-s", 1)[1] for key, _ in commands] == ["0"] * 4 + ["1"] * 4
    for _, argv in commands:
        config = json.loads(argv[argv.index("--config-json") + 1])
        assert config["max_epochs"] == 3 and all(1 <= s <= 2 for s in config["optim"]["lr_steps"])
        assert config["accelerator"] == "gpu" and config["precision"] == "bf16-mixed"
