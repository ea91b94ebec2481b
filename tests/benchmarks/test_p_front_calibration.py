"""benchmarks/p_front_calibration.py runs and says what it measured: per number of seeds a Brier score
and a reliability table; with more seeds P(front) is sharper (a lower Brier score)."""

import runpy

from repo import ROOT

BENCHMARK = ROOT / "benchmarks" / "p_front_calibration.py"


def test_the_calibration_table_sharpens_with_seeds(capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", [str(BENCHMARK), "--replications", "8", "--seeds", "2", "8"])
    runpy.run_path(str(BENCHMARK), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    rows = {int(line.split()[0]): float(line.split()[1]) for line in lines[2:]}
    assert set(rows) == {2, 8} and all(0.0 <= b <= 0.25 for b in rows.values())
    assert rows[8] < rows[2]
    assert "mean predicted / share truly on the front" in lines[1]
