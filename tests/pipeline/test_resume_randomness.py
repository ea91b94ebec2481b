"""A run resumed from its checkpoint after epoch 1 ends with exactly the metrics of the same run
uninterrupted (on a CPU, one process): its checkpoints carry every random stream it draws from
(pipeline/training/checkpoints.py's RandomStreams), so epoch 2's data order, augmentations and
dropout are the uninterrupted run's, not a restart of epoch 1's (issue 38, item 1)."""

import lightning as L
import pytest

from attnlab.pipeline.config.train import build_train_config
from attnlab.pipeline.training.run import run_training


class StopAfter(L.Callback):
    """Ends the run after `epochs` epochs, its checkpoint written: an interruption, without a fault."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


SPEEDS = {
    "segmentation": {"segmentation": {"crop_size": 64}, "data": {"batch_size": 4}, "limit_train_batches": 4},
    "translation": {"limit_train_batches": 6},
}


TRANSLATION_GAP = (
    "translation resumes a little apart (val/nll 5.08105 against 5.08096 after epoch 2; epoch 2's "
    "first logged step differs): its random streams are restored, its batch order is seeded per "
    "epoch; the rest of its state is not found yet (issue 38)"
)


@pytest.mark.parametrize(
    "task, spec",
    [
        ("segmentation", "0010+deform"),
        pytest.param(
            "translation",
            "enc_self=0010,dec_self=1000,enc_dec=1000",
            marks=pytest.mark.xfail(strict=True, reason=TRANSLATION_GAP),
        ),
    ],
)
def test_a_resumed_run_ends_exactly_as_an_uninterrupted_one(tmp_path, task, spec):
    def cfg(name):
        return build_train_config(
            {
                "task": task,
                "attention": spec,
                "max_epochs": 2,
                "out_dir": str(tmp_path / name),
                "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "resume"},
                "data": {"path": "tiny"},
                **SPEEDS[task],
            },
            preset="tiny",
        )

    whole = run_training(cfg("whole"), progress_bar=False)
    cut = run_training(cfg("cut"), progress_bar=False, callbacks=[StopAfter(1)])
    resumed = run_training(cfg("cut"), progress_bar=False, ckpt_path=f"{cut['checkpoint_dir']}/last.ckpt")
    val = sorted(k for k in whole["metrics"] if k.startswith("val/"))
    assert val and cut["metrics"] != whole["metrics"]  # the cut run stopped after epoch 1
    assert {k: resumed["metrics"][k] for k in val} == {k: whole["metrics"][k] for k in val}
