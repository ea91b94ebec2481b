"""Spec grammar and option routing: good specs parse, bad ones fail with the grammar in the message."""

import pytest

from attnlab.lightning_modules.attention import GRAMMAR, all_codes, build_attention, parse_spec


def test_fifteen_codes():
    codes = all_codes()
    assert len(codes) == 15 and len(set(codes)) == 15 and "0000" not in codes


@pytest.mark.parametrize(
    "text,conv,code",
    [
        ("1111", None, "1111"),
        ("w/o", None, None),
        ("NONE", None, None),
        ("deform", "deform", None),
        ("deform2", "deform2", None),
        ("dynamic", "dynamic", None),
        ("0010+deform", "deform", "0010"),
        ("deform + 1111", "deform", "1111"),
        ("0010+dynamic", "dynamic", "0010"),
    ],
)
def test_valid_specs(text, conv, code):
    spec = parse_spec(text)
    assert (spec.conv, spec.code) == (conv, code)
    assert parse_spec(str(spec)) == spec


@pytest.mark.parametrize(
    "bad,names",
    [
        ("0000", "'0000'"),
        ("11111", "'11111'"),
        ("102", "'102'"),
        ("", "empty"),
        ("attention", "'attention'"),
        ("deform+dynamic", "two convolutions"),
        ("1111+0010", "two attention parts"),
        ("w/o+deform", "cannot be combined"),
        ("1111+", "''"),
    ],
)
def test_bad_specs_name_the_part_and_grammar(bad, names):
    with pytest.raises(ValueError) as err:
        parse_spec(bad)
    assert names in str(err.value) and GRAMMAR in str(err.value)


def test_non_string_spec():
    with pytest.raises(ValueError, match="must be a string"):
        parse_spec(1111)


@pytest.mark.parametrize(
    "spec,dim,option",
    [
        ("deform", 2, "num_heads"),
        ("1111", 2, "causal"),
        ("0010+deform", 2, "bogus"),
        ("w/o", 2, "kv_stride"),
        ("1000", 1, "kv_stride"),
        ("dynamic", 2, "causal"),
    ],
)
def test_option_a_mechanism_cannot_honour_is_an_error(spec, dim, option):
    with pytest.raises(ValueError, match=f"cannot honour option\\(s\\) {option}"):
        build_attention(spec, 64, dim=dim, **{option: 1})


def test_bad_dim_and_bad_values():
    with pytest.raises(ValueError, match="dim must be 1"):
        build_attention("1111", 64, dim=3)
    with pytest.raises(ValueError, match="must divide channels=60"):
        build_attention("1111", 60, num_heads=8)
    with pytest.raises(ValueError, match="spatial_range=0 can leave a query with no key"):
        build_attention("1000", 64, spatial_range=0, kv_stride=2)


def test_options_reach_every_part_that_honours_them():
    stack = build_attention("1111+dynamic", 64, num_heads=4)
    assert stack.conv.num_heads == 4 and stack.attn.num_heads == 4


def test_options_for_filters_shared_options_but_rejects_typos():
    from attnlab.lightning_modules.attention import options_for

    shared = {"num_heads": 4, "kv_stride": 1, "kernel_size": 3}
    assert options_for("w/o", 2, shared) == {}
    assert options_for("deform", 2, shared) == {"kernel_size": 3}
    assert options_for("1111", 2, shared) == {"num_heads": 4, "kv_stride": 1}
    assert options_for("0010+dynamic", 2, shared) == shared
    with pytest.raises(ValueError, match="unknown attention option\\(s\\) kv_strid"):
        options_for("1111", 2, {"kv_strid": 1})
