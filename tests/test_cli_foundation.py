"""The console script and the config layer: help works, bad input is one clear error, exit 2."""

import json
import shutil
import subprocess
import sys

import pytest

from attnlab.cli import main
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.config.validation import SpecStr, StrictModel, read_yaml, validate


def test_console_script_help():
    exe = shutil.which("attnlab") or str(__import__("pathlib").Path(sys.executable).with_name("attnlab"))
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "attention" in out and "run" in out


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
    assert rows[0]["params"] > rows[1]["params"] > rows[2]["params"] == 0


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
