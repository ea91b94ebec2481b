"""Backbone placement, pretrained loading, every spec of the grid in both networks, cost numbers."""

import pytest
import torch
import torchvision
from torch import nn

from attnlab.lightning_modules.attention import GeneralizedAttention2d, all_codes, placed_modules
from attnlab.lightning_modules.attention.deformable import DeformConv2d
from attnlab.lightning_modules.backbone import build_resnet
from attnlab.lightning_modules.detection import build_detector
from attnlab.lightning_modules.segmentation import build_segmenter
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.config.train import build_train_config
from attnlab.pipeline.costs.measure import measure_efficiency

GRID = [*all_codes(), "w/o", "deform", "0010+deform", "1111+deform", "dynamic"]


def _blocks(model, layer):
    return list(getattr(model, layer))


def test_default_placement_follows_the_study():
    net = build_resnet(50, "0010+deform")
    for layer, n_blocks, attn, deform in [
        ("layer1", 3, False, False),
        ("layer2", 4, False, True),
        ("layer3", 6, True, True),
        ("layer4", 3, True, True),
    ]:
        blocks = _blocks(net, layer)
        assert len(blocks) == n_blocks
        assert all(isinstance(b.attention, GeneralizedAttention2d) == attn for b in blocks), layer
        assert all(isinstance(b.conv2, DeformConv2d) == deform for b in blocks), layer
        assert all(isinstance(b.block_attention, nn.Identity) for b in blocks)
    assert len([s for s in placed_modules(net) if s.endswith("attention")]) == 9  # 6 in res4 + 3 in res5


def test_placement_is_configurable():
    net = build_resnet(50, "1111", attention_stages=["res3"], position="after_block")
    assert all(
        isinstance(b.block_attention, GeneralizedAttention2d) and b.block_attention.channels == 512
        for b in net.layer2
    )
    assert all(isinstance(b.attention, nn.Identity) for b in net.layer3)


def test_strided_deform_block_keeps_the_shapes():
    net = build_resnet(50, "deform")
    assert net.layer3[0].conv2.stride == 2
    assert net(torch.randn(1, 3, 64, 96)).shape == (1, 1000)


def test_pretrained_weights_load_from_a_local_file(tmp_path):
    ref = torchvision.models.resnet50()
    path = tmp_path / "r50.pth"
    torch.save(ref.state_dict(), path)
    net = build_resnet(50, "0010+deform", pretrained=str(path))
    torch.testing.assert_close(
        net.layer3[0].conv2.weight, ref.layer3[0].conv2.weight
    )  # deform keeps 3x3 weights
    torch.testing.assert_close(net.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)
    with pytest.raises(ValueError, match="do not fit this ResNet"):
        build_resnet(101, "w/o", pretrained=str(path))
    with pytest.raises(FileNotFoundError, match="not found"):
        build_resnet(50, "w/o", pretrained=str(tmp_path / "missing.pth"))


def test_segmentation_backbone_is_dilated_to_output_stride_8():
    cfg = build_train_config({"task": "segmentation", "attention": "1111"}, preset="paper")
    assert cfg.backbone.depth == 50
    net = build_segmenter(cfg, 19)
    feats = net.backbone(torch.randn(1, 3, 64, 96))["out"]
    assert feats.shape[-2:] == (8, 12)


@pytest.mark.parametrize("spec", GRID)
def test_every_spec_trains_a_step_in_both_networks(spec):
    det_cfg = build_train_config(
        {"task": "detection", "attention": spec, "detection": {"min_size": 64, "max_size": 64}}
    )
    det = build_detector(det_cfg, num_classes=3)
    images = [torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[5.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([2])}]
    loss = sum(det(images, targets).values())
    loss.backward()
    assert torch.isfinite(loss)
    seg = build_segmenter(build_train_config({"task": "segmentation", "attention": spec}), 19)
    out = seg(torch.randn(2, 3, 48, 64))["out"]
    assert out.shape == (2, 19, 48, 64)
    seg_loss = nn.functional.cross_entropy(out, torch.randint(0, 19, (2, 48, 64)))
    seg_loss.backward()
    assert torch.isfinite(seg_loss)


def test_attention_flops_equal_the_analytic_sum_of_the_placed_modules():
    cfg = build_train_config({"task": "segmentation", "attention": "1111+deform"})
    net = build_segmenter(cfg, 19)
    sites = placed_modules(net)
    shapes = {}

    def record(name):
        def hook(module, inputs, output):
            shapes.setdefault(name, tuple(inputs[0].shape))

        return hook

    hooks = [dict(net.named_modules())[s].register_forward_hook(record(s)) for s in sites]
    x = torch.randn(1, 3, 64, 96)
    stats = measure_efficiency(net, (x,), sites, repeats=1)
    for h in hooks:
        h.remove()
    analytic = sum(dict(net.named_modules())[s].flops(shapes[s]) for s in sites)
    assert stats["attention_flops"] == analytic > 0
    assert stats["flops"] > stats["attention_flops"]
    assert stats["params"] == sum(p.numel() for p in net.parameters())
    assert stats["latency_ms"] > 0 and stats["peak_memory_mb"] > 0


@pytest.mark.parametrize("spec", ["deform", "1111+deform", "dynamic", "0010", "w/o"])
def test_added_flops_are_the_whole_networks_flops_over_the_same_network_without_attention(spec):
    """What a mechanism adds is measured against the `w/o` network itself, not taken on trust:
    a deformable conv is charged only what it adds to the 3x3 conv it replaced (dynamic conv, cheaper
    than that conv, adds a negative amount)."""
    x = torch.randn(1, 3, 64, 96)

    def stats(attention):
        torch.manual_seed(0)
        net = build_segmenter(build_train_config({"task": "segmentation", "attention": attention}), 19)
        return measure_efficiency(net, (x,), placed_modules(net), repeats=1)

    with_spec, without = stats(spec), stats("w/o")
    assert with_spec["added_flops"] == with_spec["flops"] - without["flops"]
    if "deform" in spec or spec == "dynamic":  # the conv it replaced is backbone, not attention
        assert with_spec["added_flops"] < with_spec["attention_flops"]
    else:
        assert with_spec["added_flops"] == with_spec["attention_flops"]


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="attention:.*unknown part 'attn'"):
        build_train_config({"task": "detection", "attention": "attn"})
    with pytest.raises(ConfigError, match="task:"):
        build_train_config({"task": "classification"})
    with pytest.raises(ConfigError, match="unknown attention option\\(s\\) heads"):
        build_train_config({"task": "detection", "backbone": {"attention_options": {"heads": 4}}})
    with pytest.raises(ConfigError, match="depth:"):
        build_train_config({"task": "detection", "backbone": {"depth": 34}})


def test_lr_steps_follow_max_epochs_unless_given():
    assert build_train_config({"task": "detection", "data": {"path": "/x"}}).optim.lr_steps == [8, 11]
    assert build_train_config(
        {"task": "detection", "max_epochs": 24, "data": {"path": "/x"}}
    ).optim.lr_steps == [16, 22]
    assert build_train_config(
        {"task": "detection", "max_epochs": 3, "optim": {"lr_steps": [2]}}
    ).optim.lr_steps == [2]
    with pytest.raises(ConfigError, match="lr_steps"):
        build_train_config({"task": "detection", "max_epochs": 3, "optim": {"lr_steps": [5]}})
