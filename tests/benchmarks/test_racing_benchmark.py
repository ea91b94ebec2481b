"""benchmarks/racing.py on a planted reference set: racing (the product's own race) spends at most
uniform-4's trials, the configuration far below a cheaper one gets no seeds beyond its first two,
and the verdict columns count the findings' comparisons the full set decides."""

import csv
import re
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
    assert 0.0 <= float(rows["race"][7]) <= 1.0  # the wrong-settlement rate
    # Every policy accounts for each comparison the full set decides: agreeing, disagreeing or open.
    decided = int(re.search(r"decides (\d+) of (\d+) findings", lines[0]).group(1))
    assert all(abs(sum(float(x) for x in row[4:7]) - decided) < 1e-9 for row in rows.values()), lines
    assert float(rows["uniform-8"][4]) == decided  # the full set agrees with itself
    values, _, _ = module["by_configuration"](module["load"](reference), "segmentation", "added_flops")
    costs = {c: {"cost/added_flops": PLANTED[c][1] * 1e9, "cost/flops": 1e10} for c in PLANTED}
    policy = module["SeedPolicy"](policy="race", min=2, max=8, budget=4 * len(PLANTED))
    _, _, state = module["race"](values, costs, policy, "added_flops")
    assert state.latest["0001"].state == "dominated" and state.latest["0001"].seeds == 2


def test_simulated_replays_draw_new_seeds_around_the_means_moved_apart(tmp_path, capsys, monkeypatch):
    """--simulate S: every replay is a new draw; configurations moved further apart (S = 3) leave the
    full set fewer open ones than the measured spacing does (S = 0: every mean the grand mean)."""
    reference = tmp_path / "ref.csv"
    _reference(reference)
    opened = {}
    for scale in ("0", "3"):
        argv = [str(BENCHMARK), str(reference), "--replays", "3", "--simulate", scale]
        monkeypatch.setattr("sys.argv", argv)
        runpy.run_path(str(BENCHMARK), run_name="__main__")
        header = capsys.readouterr().out.splitlines()[0]
        assert f"simulated seeds (means {scale}x as far apart" in header, header
        opened[scale] = float(re.search(r"off it, ([\d.]+) open", header).group(1))
    assert opened["3"] < opened["0"], opened
