"""benchmarks/racing.py on a planted reference set: racing spends at most uniform-4's trials, and the
configuration far below a cheaper one gets no seeds beyond its first two."""

import csv
import runpy

import numpy as np
from repo import ROOT

BENCHMARK = ROOT / "benchmarks" / "racing.py"
# spec: (true final mIoU, GFLOPs added); seeds add N(0, 0.016)
PLANTED = {
    "w/o": (0.30, 0.0),
    "0010": (0.34, 0.3),
    "0001": (0.22, 1.3),
    "1111": (0.345, 2.5),
    "deform": (0.335, 0.29),
}


def _reference(path):
    rng = np.random.default_rng(0)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "task",
                "spec",
                "seed",
                "epoch",
                "metric",
                "value",
                "added_flops",
                "flops",
                "attention_flops",
                "params",
            ]
        )
        for spec, (mean, cost) in PLANTED.items():
            for seed in range(8):
                final = mean + 0.016 * rng.standard_normal()
                for epoch in (1, 2):
                    writer.writerow(
                        [
                            "segmentation",
                            spec,
                            seed,
                            epoch,
                            "val/mIoU",
                            final * epoch / 2,
                            cost * 1e9,
                            1e10,
                            cost * 1e9,
                            1e7,
                        ]
                    )


def test_racing_spends_at_most_uniform_4s_trials(tmp_path, capsys, monkeypatch):
    reference = tmp_path / "ref.csv"
    _reference(reference)
    monkeypatch.setattr("sys.argv", [str(BENCHMARK), str(reference), "--replays", "3"])
    module = runpy.run_path(str(BENCHMARK), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert set(rows) == {"uniform-2", "uniform-4", "uniform-8", "race"}
    assert float(rows["race"][0]) <= float(rows["uniform-4"][0]) == 4 * len(PLANTED)
    assert 0.0 <= float(rows["race"][4]) <= 1.0  # the wrong-settlement rate
    values, costs, _ = module["by_configuration"](module["load"](reference), "segmentation", "added_flops")
    _, _, settled = module["race"](
        {c: v for c, v in values.items()}, costs, module["RaceRules"](), 4 * len(PLANTED)
    )
    assert settled["0001"].state == "dominated" and settled["0001"].seeds == 2
