"""A run's randomness follows (seed, epoch, batch or item), never what ran before (issue 38, item 1):
a run resumed from its checkpoint after epoch 1 ends with exactly the metrics of the same run
uninterrupted, on a CPU, for every task; each epoch reads its data in a new order; and the number
of loader worker processes changes nothing. (Two Ray Train workers: tests/tune/test_sweep_every_task.py
reruns a resumed two-worker trial and gets its metrics exactly.)"""

import hashlib

import lightning as L
import pytest
import torch

from attnlab.pipeline.config.train import build_train_config
from attnlab.pipeline.training.run import run_training


class StopAfter(L.Callback):
    """Ends the run after `epochs` epochs, its checkpoint written: an interruption, without a fault."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


class FirstBatches(L.Callback):
    """A digest of each epoch's first training batch."""

    def __init__(self):
        self.digests = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            tensors = [t for t in torch.utils._pytree.tree_leaves(batch) if torch.is_tensor(t)]
            self.digests.append(hashlib.md5(b"".join(t.numpy().tobytes() for t in tensors)).hexdigest())


SPECS = {
    "segmentation": "0010+deform",
    "detection": "0010",
    "translation": "enc_self=0010,dec_self=1000,enc_dec=1000",
}
SPEEDS = {
    "segmentation": {"segmentation": {"crop_size": 64}, "data": {"batch_size": 4}, "limit_train_batches": 4},
    "detection": {"data": {"batch_size": 2}, "limit_train_batches": 3},
    "translation": {"limit_train_batches": 6},
}


def _config(tmp_path, task, name, **more):
    return build_train_config(
        {
            "task": task,
            "attention": SPECS[task],
            "max_epochs": 2,
            "out_dir": str(tmp_path / name),
            "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "resume"},
            "data": {"path": "tiny"},
            **SPEEDS[task],
            **more,
        },
        preset="tiny",
    )


def _val(result) -> dict:
    return {k: v for k, v in result["metrics"].items() if k.startswith("val/")}


@pytest.mark.parametrize("task", sorted(SPECS))
def test_a_resumed_run_ends_exactly_as_an_uninterrupted_one(tmp_path, task):
    batches = FirstBatches()
    whole = run_training(_config(tmp_path, task, "whole"), progress_bar=False, callbacks=[batches])
    cut = run_training(_config(tmp_path, task, "cut"), progress_bar=False, callbacks=[StopAfter(1)])
    resumed = run_training(
        _config(tmp_path, task, "cut"), progress_bar=False, ckpt_path=f"{cut['checkpoint_dir']}/last.ckpt"
    )
    assert _val(whole) and cut["metrics"] != whole["metrics"]  # the cut run stopped after epoch 1
    assert _val(resumed) == _val(whole)
    assert len(batches.digests) == 2 and batches.digests[0] != batches.digests[1]  # a new order each epoch


def test_loader_worker_processes_change_nothing(tmp_path):
    """Each item's augmentation is seeded by (seed, epoch, item), not by the process that reads it."""
    alone = run_training(_config(tmp_path, "segmentation", "alone"), progress_bar=False)
    workers = run_training(
        _config(tmp_path, "segmentation", "workers", data={"batch_size": 4, "num_workers": 2}),
        progress_bar=False,
    )
    assert _val(alone) and _val(workers) == _val(alone)
