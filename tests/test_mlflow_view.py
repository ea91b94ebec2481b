"""Experiments attnlab creates open in MLflow's model-training view, not its GenAI overview."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from services import clean_env

from pipeline import tags, tracking

ATTNLAB = str(Path(sys.executable).with_name("attnlab"))


def test_the_installed_mlflow_ui_knows_the_experiment_kind_attnlab_sets():
    """Checked against the UI bundle of the installed MLflow, so an MLflow that renames the tag or
    its values fails here instead of silently opening the GenAI view again."""
    bundle = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    text = "".join(p.read_text(errors="ignore") for p in bundle.glob("*.js"))
    assert tags.EXPERIMENT_KIND in text
    assert f'CUSTOM_MODEL_DEVELOPMENT="{tags.KIND_MODEL_TRAINING}"' in text


def test_new_experiments_are_model_training_and_a_users_choice_stays(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    tracking.open_run(uri, "fresh", name="r", params={}, tags={})
    assert client.get_experiment_by_name("fresh").tags[tags.EXPERIMENT_KIND] == tags.KIND_MODEL_TRAINING
    old = client.create_experiment("older")  # made before attnlab set a kind: attnlab sets it
    tracking.ensure_experiment(client, "older", uri)
    assert client.get_experiment(old).tags[tags.EXPERIMENT_KIND] == tags.KIND_MODEL_TRAINING
    mine = client.create_experiment("mine", tags={tags.EXPERIMENT_KIND: "finetuning"})
    tracking.ensure_experiment(client, "mine", uri)
    assert client.get_experiment(mine).tags[tags.EXPERIMENT_KIND] == "finetuning"


def _train(workdir: Path, *flags: str, **env: str) -> dict:
    proc = subprocess.run(
        [
            ATTNLAB,
            "train",
            "--task",
            "segmentation",
            "--preset",
            "tiny",
            "--max-epochs",
            "2",
            "--no-progress",
            *flags,
        ],
        cwd=workdir,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index('{\n  "run_id"') :])[0]


def test_runs_record_their_data_as_datasets_and_system_metrics_unless_told_not_to(
    tmp_path, tiny_segmentation
):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    first = _train(tmp_path, "--data", str(tiny_segmentation), MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="0.5")
    run = client.get_run(first["run_id"])
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert sorted(inputs) == ["cityscapes/train", "cityscapes/val"]
    train, val = inputs["cityscapes/train"], inputs["cityscapes/val"]
    assert [t.value for t in train.tags] == ["training"] and [t.value for t in val.tags] == ["validation"]
    assert json.loads(train.dataset.source)["uri"] == tiny_segmentation.resolve().as_uri()
    images = len(list((tiny_segmentation / "leftImg8bit" / "train").rglob("*.png")))
    assert json.loads(train.dataset.profile) == {"num_rows": images}
    assert "system/cpu_utilization_percentage" in run.data.metrics  # MLflow's own monitor
    assert "system/system_memory_usage_megabytes" in run.data.metrics

    # Other data (one training pair fewer) is another dataset: a different digest and size.
    other = tmp_path / "other"
    shutil.copytree(tiny_segmentation, other)
    image = sorted((other / "leftImg8bit" / "train").rglob("*.png"))[0]
    label = next((other / "gtFine" / "train").rglob(image.name.replace("leftImg8bit", "gtFine_labelIds")))
    image.unlink()
    label.unlink()
    second = _train(tmp_path, "--data", str(other), "--no-system-metrics")
    run2 = client.get_run(second["run_id"])
    train2 = next(d for d in run2.inputs.dataset_inputs if d.dataset.name == "other/train")
    assert train2.dataset.digest != train.dataset.digest
    assert json.loads(train2.dataset.profile) == {"num_rows": images - 1}
    assert not any(k.startswith("system/") for k in run2.data.metrics)
