"""Properties of the 2-D mechanisms on small non-square maps (CPU, fast)."""

import pytest
import torch
import torch.nn.functional as F

from attnlab.lightning_modules.attention import GeneralizedAttention2d, all_codes, build_attention

SHAPE = (2, 32, 9, 13)  # non-square on purpose


def _with_gamma(module, value=0.7):
    with torch.no_grad():
        module.gamma.fill_(value)
    return module


@pytest.mark.parametrize("q_stride", [1, 2])
@pytest.mark.parametrize("code", all_codes())
def test_every_code_backpropagates_on_non_square_maps(code, q_stride):
    m = _with_gamma(build_attention(code, 32, num_heads=4, q_stride=q_stride))
    x = torch.randn(SHAPE, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{code}: no gradient reaches {name}"


@pytest.mark.parametrize("code", all_codes())
def test_gamma_zero_is_identity_at_init(code):
    x = torch.randn(SHAPE)
    assert torch.equal(build_attention(code, 32, num_heads=4)(x), x)


@pytest.mark.parametrize("window", [-1, 2])
@pytest.mark.parametrize("kv_stride,q_stride", [(1, 1), (2, 1), (2, 2)])
@pytest.mark.parametrize("code", all_codes())
def test_fast_paths_equal_the_direct_form(code, kv_stride, q_stride, window):
    fast = _with_gamma(
        GeneralizedAttention2d(
            32, code, num_heads=4, kv_stride=kv_stride, q_stride=q_stride, spatial_range=window
        )
    )
    direct = _with_gamma(
        GeneralizedAttention2d(
            32, code, num_heads=4, kv_stride=kv_stride, q_stride=q_stride, spatial_range=window, impl="direct"
        )
    )
    direct.load_state_dict(fast.state_dict())
    x = torch.randn(SHAPE)
    torch.testing.assert_close(fast(x), direct(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("window", [-1, 2])
@pytest.mark.parametrize("kv_stride,q_stride", [(1, 1), (2, 1), (2, 2)])
@pytest.mark.parametrize("code", all_codes())
def test_the_fused_flex_path_equals_the_direct_form_forward(code, kv_stride, q_stride, window):
    """CUDA's path (impl='auto' there) on the CPU, forward only: FlexAttention has no CPU backward."""
    kw = dict(num_heads=4, kv_stride=kv_stride, q_stride=q_stride, spatial_range=window)
    flex = _with_gamma(GeneralizedAttention2d(32, code, impl="flex", **kw))
    direct = _with_gamma(GeneralizedAttention2d(32, code, impl="direct", **kw))
    direct.load_state_dict(flex.state_dict())
    x = torch.randn(SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(flex(x), direct(x), rtol=1e-4, atol=1e-5)


def test_flex_refuses_to_train_on_a_cpu_and_names_the_fix():
    m = _with_gamma(GeneralizedAttention2d(32, "1111", num_heads=4, impl="flex"))
    with pytest.raises(ValueError, match="trains on CUDA only.*impl='auto'"):
        m(torch.randn(SHAPE))


def test_gradients_of_fast_path_equal_direct():
    fast = _with_gamma(GeneralizedAttention2d(32, "1111", num_heads=4, kv_stride=1))
    direct = _with_gamma(GeneralizedAttention2d(32, "1111", num_heads=4, kv_stride=1, impl="direct"))
    direct.load_state_dict(fast.state_dict())
    x = torch.randn(SHAPE)
    fast(x).square().sum().backward()
    direct(x).square().sum().backward()
    grads = {name: p.grad for name, p in direct.named_parameters()}
    for name, p in fast.named_parameters():
        assert ((p.grad - grads[name]).norm() / grads[name].norm()) < 1e-4, name


@pytest.mark.parametrize("kv_stride", [1, 2])
def test_0010_weights_are_the_same_for_every_query(kv_stride):
    m = _with_gamma(build_attention("0010", 32, num_heads=4, kv_stride=kv_stride), 1.0)
    x = torch.randn(SHAPE)
    delta = m(x) - x  # proj(attention output): constant over positions iff weights are query-independent
    assert delta.flatten(2).std(-1).max() < 1e-5
    # Contrast: a position term makes the weights depend on the query.
    m4 = _with_gamma(build_attention("0001", 32, num_heads=4, kv_stride=kv_stride), 1.0)
    assert (m4(x) - x).flatten(2).std(-1).max() > 1e-3


@pytest.mark.parametrize("code", ["1111", "1000", "0010", "0001", "0100"])
def test_spatial_range_masks_keys_outside_the_window(code):
    m = _with_gamma(build_attention(code, 32, num_heads=4, kv_stride=1, spatial_range=1), 1.0)
    x = torch.randn(1, 32, 8, 11)
    x2 = x.clone()
    x2[:, :, 0, 0] += 5.0  # key (and value) at (0, 0) changes
    y, y2 = m(x), m(x2)
    far = (y - y2)[:, :, 3:, :].abs().max().item() + (y - y2)[:, :, :, 3:].abs().max().item()
    assert far < 1e-5, "a query outside the window saw key (0, 0)"
    assert (y - y2)[:, :, 1, 1].abs().max() > 1e-3, "a query inside the window must see key (0, 0)"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("code", ["1111", "0100", "1000", "0010", "0011"])
def test_autocast_is_finite_and_close(code, dtype):
    m = _with_gamma(build_attention(code, 32, num_heads=4), 1.0)
    x = torch.randn(SHAPE)
    ref = m(x)
    with torch.autocast("cpu", dtype=dtype):
        y = m(x)
    assert y.dtype == x.dtype and torch.isfinite(y).all()
    assert ((y - ref).norm() / ref.norm()) < 3e-2


def test_deformable_with_zero_offsets_is_a_regular_conv():
    x = torch.randn(SHAPE)
    for stride in (1, 2):
        v1 = build_attention("deform", 32, stride=stride)
        ref = F.conv2d(x, v1.weight, stride=stride, padding=1)
        torch.testing.assert_close(v1(x), ref, rtol=1e-4, atol=1e-5)
        v2 = build_attention("deform2", 32, stride=stride)
        torch.testing.assert_close(
            v2(x), 0.5 * F.conv2d(x, v2.weight, stride=stride, padding=1), rtol=1e-4, atol=1e-5
        )


def test_deformable_offsets_learn():
    m = build_attention("deform", 32)
    x = torch.randn(SHAPE)
    m(x).square().sum().backward()
    assert m.offset.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "spec", ["deform", "deform2", "dynamic", "0010+deform", "1111+deform", "0010+dynamic", "w/o"]
)
def test_convolutions_and_combinations_run_on_non_square_maps(spec):
    m = build_attention(spec, 32, **({"num_heads": 4} if "dynamic" in spec or "1" in spec else {}))
    x = torch.randn(SHAPE, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_dynamic_2d_stride_and_shape():
    m = build_attention("dynamic", 32, num_heads=4, stride=2)
    assert m(torch.randn(SHAPE)).shape == (2, 32, 5, 7) == m.output_shape(SHAPE)


def test_combination_puts_the_convolution_before_the_attention():
    """With gamma and offsets away from their initial zeros (where the attention is the identity and
    the order invisible), the stack is attention after convolution, and the other order differs."""
    stack = build_attention("1111+deform", 32, num_heads=4)
    _with_gamma(stack.attn, 1.0)
    with torch.no_grad():
        stack.conv.offset.weight.normal_(0, 0.1)
    x = torch.randn(SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(stack(x), stack.attn(stack.conv(x)))
        swapped = stack.conv(stack.attn(x))
        assert (stack(x) - swapped).norm() > 1e-2 * swapped.norm()
