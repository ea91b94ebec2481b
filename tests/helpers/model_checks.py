"""A registered model, loaded back with `mlflow.pytorch.load_model`, against the checkpoint it came
from: same outputs on the saved example and on inputs of other sizes."""

from __future__ import annotations

import tempfile

import mlflow
import torch

from attnlab.lightning_modules.serving import IMAGENET_MEAN, IMAGENET_STD
from attnlab.pipeline.export.models import restore_module


def _other_inputs(task: str, example: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Inputs of another batch size and spatial size or length than the example."""
    g = torch.Generator().manual_seed(1)
    if task == "translation":
        src, tgt = example
        high = int(max(src.max(), tgt.max())) + 1
        return torch.randint(4, high, (3, 9), generator=g), torch.cat(
            [tgt[:1, :1].expand(3, 1), torch.randint(4, high, (3, 3), generator=g)], 1
        )
    return (torch.rand(3, 3, 40, 48, generator=g),)


def _checkpoint_output(task: str, module, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """What the trained LightningModule itself gives, in the served model's layout."""
    if task == "segmentation":
        mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return module((inputs[0] - mean) / std)
    if task == "translation":
        return module(*inputs)
    rows = []
    for found in module(inputs[0]):
        label_to_cat = module.label_to_cat
        cats = torch.tensor([float(label_to_cat[int(i)]) for i in found["labels"]])
        rows.append(torch.cat([found["boxes"], found["scores"][:, None], cats[:, None]], 1))
    return rows


def check_registered_model(client, name: str, run) -> None:
    """Version 1 of `name` comes from `run`, carries its spec and metric, and loads into a model that
    computes what the run's best checkpoint computes."""
    before = mlflow.get_tracking_uri()  # MLflow's model functions read its global URI, not the env
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        _check(client, name, run)
    finally:
        mlflow.set_tracking_uri(before)


def _check(client, name: str, run) -> None:
    task = run.data.tags["task"]
    version = client.get_model_version(name, "1")
    assert version.run_id == run.info.run_id
    assert version.tags["task"] == task and version.tags["attention"] == run.data.tags["attention"]
    assert "cost/attention_flops" in version.tags and version.tags["format"] in ("pt2", "pickle")
    uri = f"models:/{name}/1"
    info = mlflow.models.get_model_info(uri)
    assert info.signature is not None
    if task == "translation":  # two input tensors: MLflow saves no example, the metadata holds it
        assert sorted(info.metadata["input_example"]) == ["src", "tgt_in"]
    else:
        assert info.saved_input_example_info is not None
    assert client.get_logged_model(info.model_id).experiment_id == run.info.experiment_id
    loaded = mlflow.pytorch.load_model(uri)
    with tempfile.TemporaryDirectory() as tmp:
        module = restore_module(
            task, client.download_artifacts(run.info.run_id, "checkpoints/best.ckpt", tmp)
        )
    example = module.serving().example
    for inputs in (example, _other_inputs(task, example)):
        with torch.no_grad():
            served, expected = loaded(*inputs), _checkpoint_output(task, module, inputs)
        if task != "detection":
            assert served.shape == expected.shape and torch.allclose(served, expected, atol=1e-5), task
            continue
        assert served.shape == (len(inputs[0]), module.cfg.detection.detections_per_image, 6)
        for row, want in zip(served, expected):
            assert torch.allclose(row[: len(want)], want, atol=1e-5)
            assert (row[len(want) :, 5] == -1).all()
