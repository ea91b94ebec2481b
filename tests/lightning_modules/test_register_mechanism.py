"""A toy mechanism registered through the one public call is parsed, built, placed and costed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import attnlab
from attnlab.lightning_modules.attention import build_attention, parse_spec, placed_modules
from attnlab.lightning_modules.attention.registry import MECHANISMS
from attnlab.lightning_modules.backbone import build_resnet
from attnlab.pipeline.costs.measure import measure_efficiency


class ToyGate(nn.Module):
    """A squeeze-and-excite style gate: x * sigmoid(W pool(x)), with one option."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction), nn.ReLU(), nn.Linear(channels // reduction, channels)
        )

    def forward(self, x):
        return x * torch.sigmoid(self.fc(x.mean((2, 3))))[:, :, None, None]


@pytest.fixture
def toy():
    attnlab.register_mechanism("toygate", ToyGate, kind="attention", dims=(2,), defaults={"reduction": 4})
    yield "toygate"
    MECHANISMS.pop(("toygate", 2), None)


def test_a_registered_mechanism_parses_alone_and_with_a_convolution(toy):
    assert str(parse_spec("toygate")) == "toygate"
    combined = parse_spec("deform+toygate")
    assert (combined.conv, combined.code) == ("deform", "toygate")
    with pytest.raises(ValueError, match="two attention parts"):
        parse_spec("toygate+1111")


def test_it_builds_with_its_options_and_rejects_others(toy):
    module = build_attention("toygate", 32, reduction=8)
    assert isinstance(module, ToyGate) and module.fc[0].out_features == 4
    with pytest.raises(ValueError, match="cannot honour option"):
        build_attention("toygate", 32, kv_stride=2)


def test_it_is_placed_in_a_network_and_counted_as_attention_cost(toy):
    net = build_resnet(18, "toygate", attention_stages=["res4", "res5"]).eval()
    sites = placed_modules(net)
    assert sites == [f"layer{i}.{b}.attention" for i in (3, 4) for b in (0, 1)]
    stats = measure_efficiency(net, (torch.randn(1, 3, 64, 64),), sites, repeats=1)
    expected = sum(
        2 * m.in_features * m.out_features
        for s in sites
        for m in net.get_submodule(s).fc
        if isinstance(m, nn.Linear)
    )
    assert stats["attention_flops"] == expected > 0
    assert stats["attention_params"] == sum(
        p.numel() for s in sites for p in net.get_submodule(s).parameters()
    )


def test_registration_refuses_bad_names_and_silent_replacement(toy):
    with pytest.raises(ValueError, match="already registered"):
        attnlab.register_mechanism("toygate", ToyGate)
    for bad in ("1111", "w/o", "Toy", "code"):
        with pytest.raises(ValueError, match="mechanism name"):
            attnlab.register_mechanism(bad, ToyGate)
    with pytest.raises(ValueError, match="unknown part 'nogate'"):
        parse_spec("nogate")


def test_the_attention_table_lists_and_counts_it(toy):
    from attnlab.pipeline.costs.attention_table import AttentionTableConfig, attention_table

    rows = {r["spec"]: r for r in attention_table(AttentionTableConfig(shape=(1, 32, 8, 8)))}
    assert rows["toygate"]["gflops"] == 2 * 2 * 32 * 8 / 1e9 and rows["toygate"]["params"] > 0
    assert "deform2" in rows and "1111" in rows


def test_a_registered_mechanism_says_where_it_comes_from(toy):
    assert MECHANISMS[("toygate", 2)].source == f"{__name__}:ToyGate"


def _constructor_options(cls, fixed) -> dict:
    """The keyword defaults of a class's constructor, less what its registration fixes."""
    import inspect

    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not p.empty and p.name not in fixed}


def test_every_built_in_is_declared_beside_its_class_with_its_constructors_defaults():
    """The registry reads each built-in from its class's source without importing torch; imported,
    the class's own signature must say the same options and defaults, and it must be what builds."""
    import importlib

    from attnlab.lightning_modules.attention.registry import _builtins

    declared = _builtins()
    assert {(b.name, b.dim) for b in declared} == {
        (n, d) for n in ("code", "deform", "deform2", "dynamic") for d in (1, 2)
    }
    for b in declared:
        cls = getattr(importlib.import_module(f"attnlab.lightning_modules.attention.{b.module}"), b.cls)
        assert dict(b.defaults) == _constructor_options(cls, b.fixed), b
        registered = MECHANISMS[(b.name, b.dim)]
        assert registered.source.endswith(f".{b.module}:{b.cls}") and registered.defaults == b.defaults
        made = registered.build(16, "1111" if b.name == "code" else b.name)
        assert type(made) is cls and all(getattr(made, k, v) == v for k, v in b.fixed.items())


def test_a_built_in_goes_through_the_public_checks():
    from attnlab.lightning_modules.attention.registry import _register

    with pytest.raises(ValueError, match="already registered"):
        _register("deform", ToyGate, "conv", (2,), {}, False, "here", builtin=True)
    with pytest.raises(ValueError, match="kind 'gate'"):
        _register("newgate", ToyGate, "gate", (2,), {}, False, "here", builtin=True)
