"""Deformable and dynamic convolution against the independent references of conv_references.py,
with offsets and kernels away from their zero initialisation (where deform is a plain conv)."""

import pytest
import torch
from conv_references import deform1d, deform2d, dynamic1d, dynamic2d

from attnlab.lightning_modules.attention import build_attention


def _perturbed(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "offset" in name:
                p.normal_(0, 0.3)  # sample points land between pixels and outside the map
    return module.eval()


@pytest.mark.parametrize("shape", [(2, 8, 9, 13), (1, 8, 7, 7)])
@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("spec,groups", [("deform", 1), ("deform2", 1), ("deform", 2), ("deform2", 2)])
def test_deform2d_matches_bilinear_sampling(spec, groups, stride, dilation, shape):
    m = _perturbed(build_attention(spec, 8, stride=stride, dilation=dilation, deform_groups=groups))
    x = torch.randn(shape)
    with torch.no_grad():
        torch.testing.assert_close(m(x), deform2d(m, x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("spec", ["deform", "deform2"])
def test_deform1d_matches_linear_sampling(spec, causal):
    m = _perturbed(build_attention(spec, 8, dim=1, causal=causal, deform_groups=2))
    x = torch.randn(2, 11, 8)
    with torch.no_grad():
        torch.testing.assert_close(m(x), deform1d(m, x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("shape", [(2, 8, 9, 13), (1, 8, 6, 6)])
@pytest.mark.parametrize("stride,dilation,kernel", [(1, 1, 3), (2, 1, 3), (1, 2, 3), (1, 1, 5)])
def test_dynamic2d_matches_the_formula(stride, dilation, kernel, shape):
    m = build_attention(
        "dynamic", 8, num_heads=2, stride=stride, dilation=dilation, kernel_size=kernel
    ).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        torch.testing.assert_close(m(x), dynamic2d(m, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("causal,kernel", [(False, 3), (True, 3), (True, 4), (False, 7)])
def test_dynamic1d_matches_the_formula(causal, kernel):
    m = build_attention("dynamic", 8, dim=1, num_heads=2, causal=causal, kernel_size=kernel).eval()
    x = torch.randn(2, 9, 8)
    with torch.no_grad():
        torch.testing.assert_close(m(x), dynamic1d(m, x), atol=1e-5, rtol=1e-5)
