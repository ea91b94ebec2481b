"""Shared fixtures: deterministic seeds and small CPU threads so the suite fits a 2-core CI."""
import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
