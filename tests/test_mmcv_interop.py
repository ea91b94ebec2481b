"""from_mmcv: same weights, same outputs as mmcv's GeneralizedAttention (mmcv-lite is a test dependency)."""

import pytest
import torch

from lightning_modules.attention import GeneralizedAttention2d, all_codes, from_mmcv

mmcv_cnn = pytest.importorskip("mmcv.cnn", reason="mmcv-lite is installed by the [test] extra")
MMCV_WRONG = {"0100", "0110", "1100", "1110"}  # E2 without E4: mmcv transposes the query (docs/study.md)


def _mmcv(code, channels=64, **kw):
    m = mmcv_cnn.GeneralizedAttention(channels, num_heads=4, attention_type=code, **kw)
    with torch.no_grad():
        m.gamma.fill_(1.0)
    return m.eval()


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("shape", [(2, 64, 12, 12), (2, 64, 10, 14)])
@pytest.mark.parametrize("strides", [(2, 1), (1, 1), (2, 2)])
@pytest.mark.parametrize("code", [c for c in all_codes() if c not in MMCV_WRONG])
def test_matches_mmcv(code, strides, shape):
    kv, q = strides
    theirs = _mmcv(code, kv_stride=kv, q_stride=q)
    ours = from_mmcv(theirs)
    x = torch.randn(shape)
    with torch.no_grad():
        assert _rel(ours(x), theirs(x)) < 1e-4


@pytest.mark.parametrize("code", sorted(MMCV_WRONG))
def test_e2_without_e4_is_mathematically_correct_on_non_square_maps(code):
    theirs = _mmcv(code)
    ours = from_mmcv(theirs)
    reference = GeneralizedAttention2d(64, code, num_heads=4, impl="direct")
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 64, 10, 14)
    with torch.no_grad():
        assert _rel(ours(x), reference(x)) < 1e-5
        try:
            wrong = theirs(x)
        except RuntimeError:  # mmcv cannot even run these codes on non-square maps
            return
        assert _rel(ours(x), wrong) > 1e-3


def test_refuses_spatial_range():
    with pytest.raises(ValueError, match="spatial_range"):
        from_mmcv(mmcv_cnn.GeneralizedAttention(256, num_heads=8, attention_type="1111", spatial_range=5))
