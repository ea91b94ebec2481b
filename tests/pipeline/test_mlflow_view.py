"""Experiments attnlab creates open in MLflow's model-training view, not its GenAI overview."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from repo import ATTNLAB
from services import clean_env

from attnlab.pipeline.data.inputs import DataInput
from attnlab.pipeline.tracking import runs, store, tags
from attnlab.tune.local_services import tracking_server


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
    runs.open_run(uri, "fresh", name="r", params={}, tags={})
    assert client.get_experiment_by_name("fresh").tags[tags.EXPERIMENT_KIND] == tags.KIND_MODEL_TRAINING
    old = client.create_experiment("older")  # made before attnlab set a kind: attnlab sets it
    store.ensure_experiment(client, "older", uri)
    assert client.get_experiment(old).tags[tags.EXPERIMENT_KIND] == tags.KIND_MODEL_TRAINING
    mine = client.create_experiment("mine", tags={tags.EXPERIMENT_KIND: "finetuning"})
    store.ensure_experiment(client, "mine", uri)
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
    # The console: one line per epoch with the task's metric; library warnings went to the log file.
    epochs = [line for line in proc.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"] and all("val/mIoU" in e for e in epochs)
    assert "Warning" not in proc.stdout + proc.stderr and "INFO" not in proc.stdout + proc.stderr
    log = Path(proc.stdout.split("warnings and library messages: ", 1)[1].split()[0])
    assert log.is_file() and "Seed set to 0" in log.read_text()
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


def test_the_link_attnlab_prints_opens_the_runs_table_with_datasets_in_headless_chromium(tmp_path):
    """MLflow 3.17's UI picks its GenAI or training view from a URL parameter (or the browser's last
    choice), not from the kind tag; the experiment link attnlab prints asks for the training view."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    data = [
        DataInput("camvid/train", "training", "file:///data/camvid", "abc123def456", 367),
        DataInput("camvid/val", "validation", "file:///data/camvid", "0123456789ab", 101),
    ]
    for spec in ("0010", "1111"):
        run_id, _ = runs.open_run(
            uri, "ui", name=f"segmentation-{spec}-s0", params={}, tags={"task": "segmentation"}
        )
        store.log_data_inputs(uri, run_id, data)
        runs.finish_run(uri, run_id, "FINISHED")
    experiment = MlflowClient(uri).get_experiment_by_name("ui").experiment_id
    chromium = next(p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists())
    with tracking_server(uri) as server:
        served = server.url
        dom = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--window-size=1400,1000",
                f"--user-data-dir={tmp_path / 'chrome'}",
                "--virtual-time-budget=30000",
                "--dump-dom",
                store.experiment_url(served, experiment),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        ).stdout
    assert "segmentation-0010-s0" in dom and "segmentation-1111-s0" in dom, dom[-2000:]
    assert "camvid/train" in dom and "abc123def456" in dom  # the Dataset column
    for genai in ("Detect Issues", "Tool calls", "Overview"):  # the GenAI overview's panels
        assert genai not in dom


def test_a_run_leaves_mlflows_process_wide_tracking_uri_as_it_was(tmp_path, monkeypatch):
    """Lightning's MLflow logger sets MLflow's process-wide tracking URI, and MLFLOW_TRACKING_URI,
    as it starts: after `attnlab.train()` a caller's own MLflow calls went to attnlab's store (and
    so did every later test in the suite's process). The run puts both back."""
    from attnlab.pipeline.config.train import build_train_config
    from attnlab.pipeline.training.run import run_training

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(None)
    cfg = build_train_config(
        {
            "task": "translation",
            "max_epochs": 1,
            "limit_train_batches": 2,
            "out_dir": str(tmp_path / "runs"),
            "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "system_metrics": False},
        },
        preset="tiny",
    )
    try:
        run_training(cfg, progress_bar=False)
        assert "MLFLOW_TRACKING_URI" not in os.environ
        assert str(tmp_path) not in mlflow.get_tracking_uri()
    finally:
        mlflow.set_tracking_uri(None)
