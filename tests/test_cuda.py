"""On a GPU (`pytest -m cuda` on a CUDA host; skipped elsewhere and in the CPU suite): the
mechanisms give the CPU's numbers, and a run says where it trains."""

import pytest
import torch

from attnlab.lightning_modules.attention import all_codes, build_attention
from attnlab.pipeline.device_line import describe_device

pytestmark = pytest.mark.cuda


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
