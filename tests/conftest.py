"""Shared fixtures: deterministic seeds and small CPU threads so the suite fits a 2-core CI."""

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_detection(tmp_path_factory):
    from pipeline.tasks import make_tiny

    return make_tiny("detection", tmp_path_factory.mktemp("data") / "coco")


@pytest.fixture(scope="session")
def tiny_segmentation(tmp_path_factory):
    from pipeline.tasks import make_tiny

    return make_tiny("segmentation", tmp_path_factory.mktemp("data") / "cityscapes")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory with no inherited MLflow settings."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path
