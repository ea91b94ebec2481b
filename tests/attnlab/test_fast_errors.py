"""Bad input is answered before Lightning, Ray, MLflow or even torch is imported (so in well under
3 s on a laptop: `benchmarks/RESULTS.md` has the measured seconds)."""

from __future__ import annotations

import pytest
from cli_probe import probe


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--task", "segmentation", "--attention", "9999"], "unknown part '9999'"),
        (["train", "--task", "translation", "--attention", "enc_dec=w/o"], "cannot be 'w/o'"),
        (["train", "--task", "segmentation", "--data", "/nonexistent/attnlab"], "does not exist"),
        (["train", "--task", "detection", "--config", "/nonexistent.yaml"], "does not exist"),
        (["train", "--task", "segmentation", "--max-epochs", "0"], "max_epochs"),
        (["train", "--attention", "0010"], "--task is required (or --resume RUN"),
        (["train", "--resume", "0123abc"], "no run's checkpoint folder at"),
        (["train", "--resume", "0123abc", "--attention", "0010"], "drop --attention"),
        (["sweep", "--preset", "nope"], "unknown sweep preset"),
        (["attention", "12345"], "unknown part '12345'"),
        (["attention", "deform", "-o", "num_head=4"], "unknown attention option(s) num_head"),
        (
            [
                "train",
                "--task",
                "segmentation",
                "--config-json",
                '{"backbone": {"attention_options": {"x": 1}}}',
            ],
            "unknown attention option(s) x",
        ),
    ],
)
def test_bad_input_fails_before_any_heavy_import(tmp_path, argv, message):
    result, stderr = probe(tmp_path, argv)
    assert result["code"] == 2 and message in stderr, stderr
    assert result["heavy"] == [], f"imported before the error: {result['heavy']}"
    assert list(tmp_path.iterdir()) == []  # nothing written


DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--task", "segmentation", "--tracking-uri", DEAD],
        ["sweep", "--preset", "smoke", "--tracking-uri", DEAD],
        ["best", "--experiment", "smoke", "--tracking-uri", DEAD],
        ["report", "--experiment", "smoke", "--out", "r", "--tracking-uri", DEAD],
        ["findings", "--experiment", "smoke", "--tracking-uri", DEAD],
    ],
)
def test_an_unreachable_tracking_server_is_one_line_and_exit_2(tmp_path, argv):
    result, stderr = probe(tmp_path, argv)
    assert result["code"] == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and DEAD in lines[0] and "unreachable" in lines[0], stderr
    assert result["heavy"] == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["best", "findings"])
def test_read_only_commands_never_create_a_store(tmp_path, command):
    result, stderr = probe(tmp_path, [command, "--experiment", "x"], MLFLOW_TRACKING_URI="")
    assert result["code"] == 2
    assert "no MLflow store at" in stderr and list(tmp_path.iterdir()) == []
