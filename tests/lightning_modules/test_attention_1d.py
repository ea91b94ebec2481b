"""Properties of the sequence mechanisms: causality, padding, encoder-decoder, fast == direct."""

import pytest
import torch
import torch.nn.functional as F

from attnlab.lightning_modules.attention import GeneralizedAttention1d, all_codes, build_attention

N, T, C = 2, 11, 32


def _pair(code, **kw):
    fast = GeneralizedAttention1d(C, code, num_heads=4, **kw)
    direct = GeneralizedAttention1d(C, code, num_heads=4, impl="direct", **kw)
    direct.load_state_dict(fast.state_dict())
    return fast, direct


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("code", all_codes())
def test_fused_path_equals_direct_form(code, causal):
    fast, direct = _pair(code, causal=causal)
    x = torch.randn(N, T, C)
    pad = torch.zeros(N, T, dtype=torch.bool)
    pad[1, -3:] = True
    for kwargs in ({}, {"key_padding_mask": pad}):
        torch.testing.assert_close(fast(x, **kwargs), direct(x, **kwargs), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("code", all_codes())
def test_encoder_decoder_attention_equals_direct_form(code):
    fast, direct = _pair(code)
    x, memory = torch.randn(N, T, C), torch.randn(N, 7, C)
    pad = torch.zeros(N, 7, dtype=torch.bool)
    pad[0, -2:] = True
    torch.testing.assert_close(
        fast(x, memory=memory, key_padding_mask=pad),
        direct(x, memory=memory, key_padding_mask=pad),
        rtol=1e-4,
        atol=1e-5,
    )


def _future_leak(module, t0=6):
    """Max change of outputs before t0 when the input at t0 and later changes."""
    x = torch.randn(N, T, C)
    x2 = x.clone()
    x2[:, t0:] += torch.randn(N, T - t0, C)
    with torch.no_grad():
        return (module(x)[:, :t0] - module(x2)[:, :t0]).abs().max().item()


@pytest.mark.parametrize(
    "spec", [*all_codes(), "deform", "deform2", "dynamic", "0010+deform", "1111+dynamic"]
)
def test_causal_sites_never_read_the_future(spec):
    opts = {"num_heads": 4} if spec not in ("deform", "deform2") else {}
    causal = build_attention(spec, C, dim=1, causal=True, **opts)
    for p in causal.parameters():  # make offsets non-zero so deformable sampling really moves
        torch.nn.init.normal_(p, std=0.3)
    assert _future_leak(causal) == 0.0
    free = build_attention(spec, C, dim=1, causal=False, **opts)
    for p in free.parameters():
        torch.nn.init.normal_(p, std=0.3)
    assert _future_leak(free) > 1e-4, "the non-causal form should see the future (test would be vacuous)"


@pytest.mark.parametrize("spec", ["1111", "0010", "0001", "dynamic", "deform"])
def test_padded_keys_are_ignored(spec):
    opts = {"num_heads": 4} if spec != "deform" else {}
    m = build_attention(spec, C, dim=1, **opts).eval()
    x = torch.randn(N, T, C)
    pad = torch.zeros(N, T, dtype=torch.bool)
    pad[:, -3:] = True
    x2 = x.clone()
    x2[:, -3:] = torch.randn(N, 3, C)
    y, y2 = m(x, key_padding_mask=pad), m(x2, key_padding_mask=pad)
    torch.testing.assert_close(y[:, : T - 4], y2[:, : T - 4], rtol=0, atol=1e-6)


def test_spatial_range_window_in_1d():
    m = build_attention("1111", C, dim=1, num_heads=4, spatial_range=2)
    x = torch.randn(1, T, C)
    x2 = x.clone()
    x2[:, 0] += 3.0
    d = (m(x) - m(x2)).abs().amax(-1)[0]
    assert d[3:].max() < 1e-5 and d[2] > 1e-4


def test_deformable_1d_with_zero_offsets_is_a_regular_conv():
    for causal in (False, True):
        m = build_attention("deform", C, dim=1, causal=causal)
        x = torch.randn(N, T, C)
        seq = F.pad(x.transpose(1, 2), (2, 0) if causal else (1, 1))
        ref = F.conv1d(seq, m.weight[:, :, 0], m.bias).transpose(1, 2)
        torch.testing.assert_close(m(x), ref, rtol=1e-4, atol=1e-5)


def test_wo_contributes_nothing_and_convolutions_refuse_memory():
    x = torch.randn(N, T, C)
    assert torch.equal(build_attention("w/o", C, dim=1)(x), torch.zeros_like(x))
    for spec in ("deform", "dynamic"):
        with pytest.raises(ValueError, match="cannot attend to a separate key/value sequence"):
            build_attention(spec, C, dim=1)(x, memory=x)


def test_incremental_decoding_matches_full_causal_pass():
    m = build_attention("1111", C, dim=1, num_heads=4, causal=True).eval()
    x = torch.randn(1, T, C)
    full = m(x)
    for t in range(T):
        step = m(x[:, t : t + 1], memory=x[:, : t + 1], query_offset=t)
        torch.testing.assert_close(step[:, 0], full[:, t], rtol=1e-4, atol=1e-5)
