"""The same sweep gives the same answer whatever order its trials run in: early stopping's decisions,
every trial's metric history and the ranking are identical one trial at a time in the grid's order
and two at a time in the reverse order (synchronous rungs, tune/pareto_asha.py). Before them, the
order decided which trials pareto-asha stopped (issue #36)."""

import json
import sys

import pytest
import yaml
from repo import ROOT, run_attnlab

sys.path.insert(0, str(ROOT / "benchmarks"))
from same_answer import differences, dump  # noqa: E402

pytestmark = pytest.mark.slow

SPECS = ["w/o", "0010", "1111", "deform"]


def _sweep(tmp_path, name: str, specs: list[str], concurrency: int) -> tuple[dict, str]:
    workdir = tmp_path / name
    workdir.mkdir()
    config = {
        "name": "order",
        "max_epochs": 3,
        "grid": [
            {
                "task": "segmentation",
                "specs": specs,
                "preset": "tiny",
                "overrides": {
                    "segmentation": {"crop_size": 48},
                    "data": {"batch_size": 4},
                    "limit_train_batches": 3,
                },
            }
        ],
        # rungs at epochs 1 and 2; every configuration on the front may be promoted
        "early_stopping": {
            "policy": "pareto-asha",
            "grace_period": 1,
            "reduction_factor": 2,
            "tolerance": 0.0,
        },
        "resources": {"workers_per_trial": 1, "cpus_per_worker": 1},
        "max_concurrent_trials": concurrency,
        "system_metrics": False,
    }
    (workdir / "sweep.yaml").write_text(yaml.safe_dump(config))
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    proc = run_attnlab(
        ["sweep", "--config", "sweep.yaml", "--tracking-uri", uri, "--storage", str(workdir / "s")], workdir
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    best = run_attnlab(["best", "--tracking-uri", uri, "--experiment", "order", "--format", "json"], workdir)
    assert best.returncode == 0, best.stderr[-2000:]
    return dump(uri, "order"), best.stdout


def _answer(best_json: str) -> dict:
    """`attnlab best`'s JSON less what names the runs (their ids, the rerun commands' paths)."""
    out = json.loads(best_json)
    for task in out.values():
        for rung in [task, *task["rungs"]]:
            for row in rung["ranking"]:
                row.pop("runs"), row.pop("reruns")
                row["values"] = sorted(row["values"])
    return out


def test_one_at_a_time_in_order_and_two_at_a_time_reversed_agree(tmp_path):
    serial, serial_best = _sweep(tmp_path, "serial", SPECS, 1)
    parallel, parallel_best = _sweep(tmp_path, "parallel", SPECS[::-1], 2)
    assert differences(serial, parallel) == []
    assert _answer(serial_best) == _answer(parallel_best)
    decided = [t["early_stopping"] for t in serial.values()]
    assert all(decided) and any(t["stopped_early"] for t in serial.values())  # it did decide
