"""The console script and the config layer: help works, bad input is one clear error, exit 2."""

import argparse
import json
import subprocess

import pytest
from repo import ATTNLAB

from attnlab.cli import main
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.config.validation import SpecStr, StrictModel, read_yaml, validate


def _commands():
    """(name, its parser) of every subcommand of the CLI's one argparse tree."""
    from attnlab.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub, sorted(sub.choices.items())


def test_the_console_script_lists_every_command_with_what_it_does():
    out = subprocess.run([ATTNLAB, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("usage: attnlab"), out.stderr
    sub, commands = _commands()
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert len(commands) >= 10
    for name, _ in commands:
        assert helps.get(name), f"attnlab {name} has no help line"
        assert f"{name}" in out.stdout and " ".join(helps[name].split()[:4]) in " ".join(out.stdout.split())


def test_the_console_script_says_its_version():
    from importlib.metadata import version

    out = subprocess.run([ATTNLAB, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == f"attnlab {version('attnlab')}\n", out.stderr


@pytest.mark.parametrize("name", [name for name, _ in _commands()[1]])
def test_every_command_describes_itself_and_every_flag(name, capsys):
    """`attnlab NAME --help` says what the command does and what each of its flags means."""
    _, commands = _commands()
    parser = dict(commands)[name]
    assert parser.description, f"attnlab {name} --help says nothing of what it does"
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith(f"usage: attnlab {name}")
    for action in parser._actions:
        if (
            action.option_strings
            and action.help != argparse.SUPPRESS
            and "--help" not in action.option_strings
        ):
            assert action.help, f"attnlab {name} {'/'.join(action.option_strings)} has no help text"


def test_attention_table_json(capsys):
    assert (
        main(
            [
                "attention",
                "1111",
                "0010",
                "w/o",
                "--shape",
                "1",
                "32",
                "8",
                "12",
                "-o",
                "num_heads=4",
                "--measure",
                "--format",
                "json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["spec"] for r in rows] == ["1111", "0010", "w/o"]
    for r in rows:
        assert r["gflops"] == pytest.approx(r["measured_gflops"])
        assert r["latency_ms"] > 0 and r["device"] == "cpu"  # the suite hides any GPU
    assert rows[0]["params"] > rows[1]["params"] > rows[2]["params"] == 0
    # Full attention holds an (N, heads, HW, HW) map: more memory than 0010's per-key term.
    assert rows[0]["peak_memory_mb"] > rows[1]["peak_memory_mb"] > 0


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["attention", "1112"], "unknown part '1112'"),
        (["attention", "1111", "--shape", "1", "32", "8"], "must be 4 positive sizes"),
        (["attention", "deform", "-o", "num_head=4"], "unknown attention option(s) num_head"),
    ],
)
def test_bad_input_is_one_clear_error(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnlab: error:") and needle in err and "Traceback" not in err


class _Example(StrictModel):
    spec: SpecStr
    epochs: int = 1


def test_validate_lists_every_problem_and_normalises_specs():
    assert validate(_Example, {"spec": "DEFORM+0010"}).spec == "0010+deform"
    with pytest.raises(ConfigError) as err:
        validate(_Example, {"spec": "0000", "epochs": "many", "epoch": 3}, "example")
    msg = str(err.value)
    assert msg.startswith("invalid example config:")
    assert "spec:" in msg and "'0000'" in msg
    assert "epochs:" in msg and "epoch: unknown key" in msg


def test_read_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        read_yaml(listed)
