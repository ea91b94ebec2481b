"""Choosing what `attnlab best --register` registers, and its refusals: named, before any export,
with nothing registered. (Registering real trials and loading them back: test_sweep_every_task.)"""

import pytest
import torch
from logged_runs import log_trial

from attnlab.cli import main
from attnlab.pipeline.analysis.ranking import fetch_runs, rank
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.export.models import (
    chosen_rows,
    portable,
    register_rows,
    registered_name,
    restore_module,
)


@pytest.fixture
def store(store):
    """The shared store (conftest) with the experiment "m" logged."""
    uri, client, exp = store.uri, store.client, store.experiment("m")
    for task, metric, spec, value in (
        ("segmentation", "val/mIoU", "0010", 0.5),
        ("segmentation", "val/mIoU", "1111", 0.4),
        ("translation", "val/bleu", "enc_self=0010", 3.0),
    ):
        log_trial(
            client,
            exp,
            task,
            spec,
            0,
            {metric: value, "cost/attention_flops": 1.0, "cost/added_flops": 1.0, "epochs_done": 2},
        )
    log_trial(
        client, exp, "detection", "0010", 0, {"val/bbox_AP": 0.1, "cost/attention_flops": 1.0}, stopped=True
    )
    return uri, client


def test_the_top_row_of_each_task_or_one_chosen_rank(store):
    uri, _ = store
    ranking = rank(fetch_runs(uri, "m"), None, None, "attention_flops")
    with pytest.raises(
        ConfigError, match="detection has no row ranked 1; ranked rows: none .*early stopping"
    ):
        chosen_rows(ranking, None)
    del ranking["detection"]
    assert [(r.task, r.attention) for r in chosen_rows(ranking, None)] == [
        ("segmentation", "0010"),
        ("translation", "enc_self=0010"),
    ]
    with pytest.raises(
        ConfigError, match="--rank picks a row of one task.*segmentation, translation; add --task"
    ):
        chosen_rows(ranking, 2)
    one = {"segmentation": ranking["segmentation"]}
    assert chosen_rows(one, 2)[0].attention == "1111"
    with pytest.raises(ConfigError, match="segmentation has no row ranked 3; ranked rows: 1, 2"):
        chosen_rows(one, 3)
    assert registered_name("best", "segmentation", 1) == "best"
    assert registered_name("best", "segmentation", 2) == "best-segmentation"


def test_a_run_without_a_checkpoint_is_refused_and_nothing_is_registered(store, capsys):
    uri, client = store
    code = main(
        ["best", "--experiment", "m", "--task", "segmentation", "--register", "x", "--tracking-uri", uri]
    )
    err = capsys.readouterr().err
    assert code == 2 and "has no checkpoints/best.ckpt artifact" in err and "nothing was registered" in err
    assert client.search_registered_models() == []
    assert main(["best", "--experiment", "m", "--rank", "2", "--tracking-uri", uri]) == 2
    assert "--rank chooses the row --register registers" in capsys.readouterr().err


def test_a_checkpoint_restores_without_the_pretrained_file_it_was_trained_from(tmp_path):
    from attnlab.lightning_modules.segmentation import SegmentationModule

    weights = tmp_path / "resnet18.pth"
    config = {"attention": "0010", "backbone": {"depth": 18, "attention_options": {"num_heads": 2}}}
    module = SegmentationModule(config, ["road", "car"])
    torch.save(module.model.backbone.state_dict(), weights)  # stands for local pretrained weights
    trained = SegmentationModule(
        {**config, "backbone": {**config["backbone"], "pretrained": str(weights)}}, ["road", "car"]
    )
    ckpt = tmp_path / "best.ckpt"
    torch.save({"hyper_parameters": dict(trained.hparams), "state_dict": trained.state_dict()}, ckpt)
    weights.unlink()  # another machine: the pretrained file is not there
    restored = restore_module("segmentation", ckpt)
    assert restored.cfg.backbone.norm == "frozen_bn" and restored.cfg.backbone.pretrained is None
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(restored(x), trained.eval()(x))
    # A checkpoint of attnlab <= 0.1 kept the batch size inside its config: it still loads, and keeps it.
    old = {**dict(trained.hparams), "config": {**trained.hparams["config"], "batch_size": 8}}
    old.pop("batch_size")
    assert SegmentationModule(**{**old, "config": portable(old["config"])}).batch_size == 8
    assert portable({"backbone": {"pretrained": "/w.pth", "norm": "bn"}})["backbone"] == {
        "pretrained": None,
        "norm": "bn",
    }


def test_every_chosen_rows_checkpoint_is_checked_before_any_is_exported(store, tmp_path):
    """Two tasks: the first's run has a best.ckpt (not even a real one), the second's has none. The
    second is named and nothing is registered: the first's file was never opened."""
    uri, client = store
    runs = fetch_runs(uri, "m")
    by_task = {r.data.tags["task"]: r for r in runs}
    fake = tmp_path / "best.ckpt"
    fake.write_bytes(b"not a checkpoint")
    client.log_artifact(by_task["segmentation"].info.run_id, str(fake), "checkpoints")
    ranking = rank(runs, None, None, "attention_flops")
    del ranking["detection"]  # early-stopped only: nothing ranked to register
    rows = chosen_rows(ranking, None)
    assert [r.task for r in rows] == ["segmentation", "translation"]
    missing = by_task["translation"].info.run_id
    with pytest.raises(ConfigError, match=f"{missing}.*has no checkpoints/best.ckpt artifact"):
        register_rows(uri, "m", runs, rows, "x", None, len(ranking))
    assert client.search_registered_models() == []


def test_a_torn_checkpoint_is_named_before_any_is_exported(store, tmp_path):
    """Both rows have a best.ckpt; the second's was cut short, as an upload a crash stopped leaves it.
    It is named, and nothing is registered."""
    uri, client = store
    runs = fetch_runs(uri, "m")
    by_task = {r.data.tags["task"]: r for r in runs}
    for task in ("segmentation", "translation"):
        ckpt = tmp_path / task / "best.ckpt"
        ckpt.parent.mkdir()
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, ckpt)
        if task == "translation":
            ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
        client.log_artifact(by_task[task].info.run_id, str(ckpt), "checkpoints")
    ranking = rank(runs, None, None, "attention_flops")
    del ranking["detection"]
    torn_run = by_task["translation"].info.run_id
    with pytest.raises(ConfigError, match=f"{torn_run}.*best.ckpt is torn \\(BadZipFile"):
        register_rows(uri, "m", runs, chosen_rows(ranking, None), "x", None, len(ranking))
    assert client.search_registered_models() == []


def test_one_export_process_logs_the_models_before_a_failed_one_and_names_it(store, tmp_path):
    """Two runs' checkpoints into one export process: the first restores and becomes its run's model
    (tagged, so registering again does not export it again); the second cannot be restored, and the
    error names its run."""
    from attnlab.lightning_modules.segmentation import SegmentationModule
    from attnlab.pipeline.export.models import log_models, model_of

    uri, client = store
    runs = {
        r.data.tags["attention"]: r for r in fetch_runs(uri, "m") if r.data.tags["task"] == "segmentation"
    }
    module = SegmentationModule({"attention": "0010", "backbone": {"depth": 18}}, ["road", "car"])
    good, bad = tmp_path / "good.ckpt", tmp_path / "bad.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, good)
    torch.save({"state_dict": {}}, bad)  # whole, but no module in it
    first, second = runs["0010"], runs["1111"]
    with pytest.raises(RuntimeError, match=f"exporting run {second.info.run_id} as a model failed"):
        log_models(uri, first.info.experiment_id, [(first, str(good)), (second, str(bad))])
    made = model_of(client.get_run(first.info.run_id))
    assert made is not None and made[0].startswith("models:/"), made
    assert model_of(client.get_run(second.info.run_id)) is None
