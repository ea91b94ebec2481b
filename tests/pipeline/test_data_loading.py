"""Every data module's loaders pin host memory exactly when their trainer trains on CUDA (the
batch's copy to the GPU then overlaps compute), and keep their worker processes across epochs."""

from types import SimpleNamespace

import pytest
import torch

from attnlab.pipeline.config.train import build_train_config
from attnlab.pipeline.tasks.registry import TASKS, make_tiny


def _trainer(device: str):
    return SimpleNamespace(
        global_rank=0, world_size=1, strategy=SimpleNamespace(root_device=torch.device(device))
    )


@pytest.fixture(scope="module")
def data_modules(tmp_path_factory):
    modules = {}
    for task in TASKS:
        root = make_tiny(task, tmp_path_factory.mktemp(task))
        cfg = build_train_config({"task": task, "data": {"path": str(root), "num_workers": 1}})
        dm = TASKS[task].make_data(cfg, root)
        dm.setup()
        modules[task] = dm
    return modules


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("device,pinned", [("cuda", True), ("cpu", False)])
def test_loaders_pin_memory_only_for_a_cuda_trainer(data_modules, task, device, pinned):
    dm = data_modules[task]
    dm.trainer = _trainer(device)
    try:
        for loader in (dm.train_dataloader(), dm.val_dataloader()):
            assert loader.pin_memory is pinned
            if loader.num_workers:
                assert loader.persistent_workers
    finally:
        dm.trainer = None
