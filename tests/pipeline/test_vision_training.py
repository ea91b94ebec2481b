"""On CPU: a segmentation model with deformable convolution learns, a run records everything in
MLflow, bad input writes nothing. How far every task learns in how long is a measurement:
benchmarks/learning.py."""

import json

import lightning as L
import pytest
import torch
from mlflow.tracking import MlflowClient

from attnlab.cli import main
from attnlab.pipeline.config.train import build_train_config
from attnlab.pipeline.tasks.registry import TASKS


class EpochLosses(L.Callback):
    """The training loss of each epoch."""

    def __init__(self):
        self.losses: list[float] = []

    def on_train_epoch_end(self, trainer, module):
        self.losses.append(trainer.callback_metrics["train/loss_epoch"].item())


def test_segmentation_with_deformable_convolution_learns_in_16_steps(tiny_segmentation, workdir):
    """`0010+deform` learns, deformable convolution's offsets included: 16 steps of one batch each
    take its loss below 0.6 of the first. How far a short run on the whole set gets in how long is
    a measurement: benchmarks/learning.py (0.00 -> 0.38 mIoU in 4 epochs)."""
    cfg = build_train_config(
        {
            "task": "segmentation",
            "attention": "0010+deform",
            "data": {"path": str(tiny_segmentation), "batch_size": 4},
            "segmentation": {"crop_size": 64},
            "out_dir": str(workdir / "runs"),
        },
        preset="tiny",
    )
    L.seed_everything(cfg.seed)
    task = TASKS["segmentation"]
    data = task.make_data(cfg, cfg.data.path)
    module = task.make_module(cfg, data)
    offsets = {n: p.detach().clone() for n, p in module.named_parameters() if ".offset." in n}
    epochs = EpochLosses()
    trainer = L.Trainer(
        max_epochs=16,
        limit_train_batches=1,
        limit_val_batches=0,
        callbacks=[epochs],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data)
    last = epochs.losses[-4:]
    assert len(epochs.losses) == 16 and sum(last) / 4 < 0.6 * epochs.losses[0], epochs.losses
    trained = dict(module.named_parameters())
    assert offsets and all(not torch.equal(trained[n].detach(), v) for n, v in offsets.items())


def test_train_cli_logs_params_metrics_checkpoints_and_cost(workdir, tiny_detection, capsys):
    assert (
        main(
            [
                "train",
                "--task",
                "detection",
                "--attention",
                "1111",
                "--data",
                str(tiny_detection),
                "--preset",
                "tiny",
                "--max-epochs",
                "2",
                "--experiment",
                "cli-test",
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{") :])
    assert summary["efficiency"]["flops"] > 0 and "val/bbox_AP" in summary["metrics"]
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("cli-test")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["attention"] == "1111" and run.data.params["backbone.depth"] == "18"
    assert run.data.tags["task"] == "detection" and run.data.tags["attention"] == "1111"
    history = client.get_metric_history(run.info.run_id, "val/bbox_AP")
    assert len(history) == 2  # one evaluation per epoch
    # What AP rests on is logged beside it; an epoch that found nothing says AP is 0 by construction.
    found = client.get_metric_history(run.info.run_id, "val/detections_per_image")
    assert len(found) == 2 and all(m.value >= 0 for m in found)
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2, out[-2000:]
    for line, m in zip(epoch_lines, sorted(found, key=lambda m: m.step)):
        assert ("no detections above 0.05: AP is 0 by construction" in line) == (m.value == 0), line
    for key in ("flops", "attention_flops", "params", "latency_ms", "peak_memory_mb"):
        assert run.data.metrics[f"cost/{key}"] > 0, key
    assert run.data.metrics["cost/attention_flops"] < run.data.metrics["cost/flops"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
    # last.ckpt is uploaded only where the last epoch is not the best (a tie keeps the older best).
    ap = [m.value for m in sorted(history, key=lambda m: m.step)]
    last_is_best = ap[-1] > max(ap[:-1])
    assert artifacts == {"checkpoints/best.ckpt"} | (set() if last_is_best else {"checkpoints/last.ckpt"})
    assert not (workdir / "mlruns").exists()  # never the deprecated file store


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--data", "{missing}"], "does not exist"),
        (["--attention", "11x1"], "unknown part '11x1'"),
        (["--data", "{malformed}"], "malformed JSON"),
        (["--data", "{empty}"], "has an annotation"),
        (["--pretrained", "{missing}/r50.pth"], "not found"),
    ],
)
def test_bad_input_is_one_error_and_writes_nothing(
    argv, needle, workdir, tiny_detection, tmp_path_factory, capsys
):
    import shutil

    base = tmp_path_factory.mktemp("bad")
    malformed, empty = base / "malformed", base / "empty"
    for folder in (malformed, empty):
        shutil.copytree(tiny_detection, folder)
    (malformed / "annotations" / "instances_train2017.json").write_text("{not json")
    doc = json.loads((empty / "annotations" / "instances_train2017.json").read_text())
    (empty / "annotations" / "instances_train2017.json").write_text(json.dumps({**doc, "annotations": []}))
    paths = {"missing": str(base / "missing"), "malformed": str(malformed), "empty": str(empty)}
    argv = [a.format(**paths) for a in argv]
    if "--data" not in argv:
        argv += ["--data", str(tiny_detection)]
    assert main(["train", "--task", "detection", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnlab: error:") and needle in err and "Traceback" not in err
    assert list(workdir.iterdir()) == [], "bad input must leave nothing behind"


def test_make_tiny_refuses_a_non_empty_folder(workdir, capsys):
    (workdir / "taken").mkdir()
    (workdir / "taken" / "file").write_text("mine")
    assert main(["data", "make-tiny", "--task", "segmentation", str(workdir / "taken")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (workdir / "taken" / "file").read_text() == "mine"
    assert main(["data", "make-tiny", "--task", "segmentation", str(workdir / "city")]) == 0
    assert len(list((workdir / "city" / "gtFine" / "train").rglob("*_labelIds.png"))) == 32
