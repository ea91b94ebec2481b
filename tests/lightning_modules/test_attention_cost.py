"""Analytic FLOPs equal torch's FlopCounterMode; parameter counts are real."""

import pytest
import torch

from attnlab.lightning_modules.attention import (
    all_codes,
    build_attention,
    count_parameters,
    efficiency,
    measure_flops,
)


def _heads(spec):
    return {"num_heads": 4} if "dynamic" in spec or "1" in spec else {}


SPECS_2D = [*all_codes(), "deform", "deform2", "dynamic", "0010+deform", "1111+deform", "0010+dynamic", "w/o"]


@pytest.mark.parametrize("spec", SPECS_2D)
def test_flops_2d_match_flop_counter(spec):
    shape = (2, 32, 10, 14)
    m = build_attention(spec, 32, **_heads(spec)).eval()
    assert m.flops(shape) == measure_flops(m, torch.randn(shape))


@pytest.mark.parametrize("window", [-1, 3])
@pytest.mark.parametrize("code", ["1111", "0100", "0001", "1010"])
def test_flops_2d_with_strides_and_window(code, window):
    shape = (1, 32, 9, 13)
    m = build_attention(code, 32, num_heads=4, q_stride=2, kv_stride=2, spatial_range=window).eval()
    assert m.flops(shape) == measure_flops(m, torch.randn(shape))


@pytest.mark.parametrize("spec", [*all_codes(), "deform", "dynamic", "0010+dynamic", "w/o"])
def test_flops_1d_match_flop_counter(spec):
    shape = (2, 9, 32)
    m = build_attention(spec, 32, dim=1, **_heads(spec)).eval()
    assert m.flops(shape) == measure_flops(m, torch.randn(shape))


def test_encoder_decoder_flops_use_memory_length():
    m = build_attention("1000", 32, dim=1, num_heads=4).eval()
    x, mem = torch.randn(2, 5, 32), torch.randn(2, 12, 32)
    assert m.flops(tuple(x.shape), memory_length=12) == measure_flops(m, x, memory=mem)


def test_efficiency_reports_params_and_flops():
    m = build_attention("1111", 32, num_heads=4)
    eff = efficiency(m, (1, 32, 8, 8))
    assert eff["params"] == count_parameters(m) == sum(p.numel() for p in m.parameters()) > 0
    assert eff["flops"] > 0
    assert efficiency(build_attention("0010", 32, num_heads=4), (1, 32, 8, 8))["flops"] < eff["flops"]
