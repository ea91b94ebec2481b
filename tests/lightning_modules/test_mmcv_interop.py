"""from_mmcv: same weights, same outputs as mmcv's GeneralizedAttention; the combined specs as an
independent deformable/dynamic reference followed by mmcv's module. mmcv-lite is in the test set,
so a missing mmcv fails here rather than skipping."""

import mmcv.cnn as mmcv_cnn
import pytest
import torch
from conv_references import deform2d, dynamic2d

from attnlab.lightning_modules.attention import GeneralizedAttention2d, all_codes, build_attention, from_mmcv

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
def test_e2_without_e4_is_mathematically_correct_where_mmcv_is_not(code):
    theirs = _mmcv(code)
    ours = from_mmcv(theirs)
    reference = GeneralizedAttention2d(64, code, num_heads=4, impl="direct")
    reference.load_state_dict(ours.state_dict())
    square, wide = torch.randn(2, 64, 12, 12), torch.randn(2, 64, 10, 14)
    with torch.no_grad():
        for x in (square, wide):
            assert _rel(ours(x), reference(x)) < 1e-5
        assert _rel(ours(square), theirs(square)) > 1e-2  # mmcv's transposed query
        with pytest.raises(RuntimeError, match="must match the size"):
            theirs(wide)  # and on non-square maps mmcv cannot run these codes at all


@pytest.mark.parametrize(
    "code,conv,reference", [("0010", "deform", deform2d), ("1111", "dynamic", dynamic2d)]
)
def test_combined_spec_is_the_convolution_then_mmcvs_attention(code, conv, reference):
    """`CODE+CONV` = the convolution (independent reference) followed by mmcv's GeneralizedAttention
    with the same weights, away from the identity at init (gamma 1, offsets perturbed)."""
    theirs = _mmcv(code)
    stack = build_attention(f"{code}+{conv}", 64, num_heads=4, kv_stride=2)
    stack.attn.load_state_dict(from_mmcv(theirs).state_dict())
    with torch.no_grad():
        for name, p in stack.conv.named_parameters():
            if "offset" in name:
                p.normal_(0, 0.3)
    stack.eval()
    x = torch.randn(2, 64, 12, 12)
    with torch.no_grad():
        assert _rel(stack(x), theirs(reference(stack.conv, x))) < 1e-4


def test_refuses_spatial_range():
    with pytest.raises(ValueError, match="spatial_range"):
        from_mmcv(mmcv_cnn.GeneralizedAttention(256, num_heads=8, attention_type="1111", spatial_range=5))
