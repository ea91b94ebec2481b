"""On a GPU (`pytest -m cuda` on a CUDA host; skipped elsewhere and in the CPU suite): the
mechanisms give the CPU's numbers, the fused FlexAttention path (what impl='auto' runs on CUDA)
gives the direct form's outputs and gradients in fp32 and stays close under bf16/fp16 autocast,
and a run says where it trains.

Tolerances: fp32 against fp32, 1e-3 relative (different summation orders over up to 117 keys);
autocast against fp32, 3e-2 relative in norm (bf16 keeps 8 bits of mantissa). TF32 is off here:
it would change what "fp32" means between the paths."""

import pytest
import torch

from attnlab.lightning_modules.attention import GeneralizedAttention2d, all_codes, build_attention
from attnlab.pipeline.training.run_lines import describe_device

pytestmark = pytest.mark.cuda
SHAPE = (2, 32, 9, 13)  # non-square on purpose


@pytest.fixture(autouse=True)
def _no_tf32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _pair(code: str, **kw):
    """(fused, direct) on the GPU with the same weights, gamma and position weights non-trivial."""
    fused = GeneralizedAttention2d(32, code, num_heads=4, **kw).cuda()
    with torch.no_grad():
        fused.gamma.fill_(0.7)
    direct = GeneralizedAttention2d(32, code, num_heads=4, impl="direct", **kw).cuda()
    direct.load_state_dict(fused.state_dict())
    return fused, direct


def _grads(module, x, dtype=None):
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
        y = module(x)
    y.float().square().sum().backward()
    return y.float(), x.grad, {n: p.grad for n, p in module.named_parameters() if p.grad is not None}


def _close(a, b, tol):
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item() < tol


@pytest.mark.parametrize("window", [-1, 2])
@pytest.mark.parametrize("kv_stride,q_stride", [(1, 1), (2, 1), (2, 2)])
@pytest.mark.parametrize("code", all_codes())
def test_the_fused_path_gives_the_direct_forms_outputs_and_gradients(code, kv_stride, q_stride, window):
    fused, direct = _pair(code, kv_stride=kv_stride, q_stride=q_stride, spatial_range=window)
    x = torch.randn(SHAPE, device="cuda")
    y, dx, dp = _grads(fused, x)
    y_ref, dx_ref, dp_ref = _grads(direct, x)
    torch.testing.assert_close(y, y_ref, rtol=1e-3, atol=1e-4)
    assert _close(dx, dx_ref, 1e-3)
    assert dp.keys() == dp_ref.keys()
    for name in dp_ref:
        assert _close(dp[name], dp_ref[name], 1e-3), name


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("code", ["1111", "0100", "0101", "1100", "0110", "1000", "0010"])
def test_the_fused_path_under_autocast_stays_close_to_fp32(code, dtype):
    fused, direct = _pair(code, kv_stride=2, spatial_range=-1)
    x = torch.randn(SHAPE, device="cuda")
    y, dx, _ = _grads(fused, x, dtype)
    y_ref, dx_ref, _ = _grads(direct, x)
    assert torch.isfinite(y).all() and torch.isfinite(dx).all()
    assert _close(y, y_ref, 3e-2) and _close(dx, dx_ref, 3e-2)


@pytest.mark.parametrize("spec", [*all_codes(), "deform", "dynamic", "0010+deform"])
def test_a_mechanism_on_the_gpu_gives_the_cpus_output_and_gradients(spec):
    torch.manual_seed(0)
    cpu = build_attention(spec, 32, num_heads=4)
    with torch.no_grad():
        for name, p in cpu.named_parameters():
            if "gamma" in name or "offset" in name:
                p.normal_(0, 0.3)
    gpu = build_attention(spec, 32, num_heads=4).cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(2, 32, 9, 13, requires_grad=True)
    y_cpu = cpu(x)
    y_cpu.square().sum().backward()
    x_gpu = x.detach().cuda().requires_grad_()
    y_gpu = gpu(x_gpu)
    y_gpu.square().sum().backward()
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, atol=2e-4, rtol=2e-4)
    torch.testing.assert_close(x_gpu.grad.cpu(), x.grad, atol=2e-3, rtol=2e-3)


def test_the_device_line_names_the_gpu():
    line = describe_device(torch.device("cuda", 0), "bf16-mixed")
    assert line == f"device: cuda:0 ({torch.cuda.get_device_name(0)}), bf16-mixed"
