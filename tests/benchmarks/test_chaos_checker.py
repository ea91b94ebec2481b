"""benchmarks/chaos.py's own logic, without a sweep: the storm follows its seed and anchors each
fault at an event the fault-free run logged; the checker excuses an epoch trained again only where
a fault interrupted it or destroyed its checkpoint, and names the first number that differs."""

import copy
import sys

from repo import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import chaos  # noqa: E402


def _events(trials: int, epochs: int) -> list[dict]:
    return [
        {"event": what, "trial": f"t{i}", "epoch": e, "rank": 0, "pid": 1, "t": float(e)}
        for i in range(trials)
        for e in range(1, epochs + 1)
        for what in ("start", "end")
        if not (what == "end" and e == 1)  # paused at its rung: never past the report there
    ]


def test_a_seed_gives_one_storm_of_distinct_anchors_the_fault_free_run_reached():
    events = _events(12, 4)
    storm = chaos.schedule(3, events)
    assert [(f.kind, f.trial, f.epoch, f.at) for f in storm] == [
        (f.kind, f.trial, f.epoch, f.at) for f in chaos.schedule(3, events)
    ]
    assert storm != chaos.schedule(4, events)
    reached = {(e["trial"], e["epoch"], "mid" if e["event"] == "start" else "end") for e in events}
    assert all((f.trial, f.epoch, f.at) in reached for f in storm)
    assert len({f.trial for f in storm}) == len(storm)  # enough trials: one fault each
    assert {f.kind for f in storm if f.truncate} == {"kill-trial", "kill-driver"}
    assert {f.kind for f in storm} >= {"kill-driver", "interrupt"}


def _run(trials: dict) -> dict:
    return {"answer": {"trials": trials, "best": {"t": [1]}, "findings": {"f": "open"}}, "events": []}


def _trial(values: list[float]) -> list[dict]:
    history = {"val/mIoU": [[3 + 4 * i, v] for i, v in enumerate(values)]}
    return [{"status": "FINISHED", "early_stopping": "kept", "stopped_early": None, "histories": history}]


def test_the_checker_accepts_the_same_answer_and_names_what_differs():
    reference = _run({"t0": _trial([0.1, 0.2])})
    assert chaos.check(copy.deepcopy(reference), reference, []) == []
    twice = _run({"t0": _trial([0.1, 0.2]) * 2})
    assert chaos.check(twice, reference, []) == ["t0: 2 runs, not one"]
    drifted = _run({"t0": _trial([0.1, 0.2000001])})
    assert chaos.check(drifted, reference, []) == ["metric history t0/val/mIoU[1][1]: 0.2000001 against 0.2"]
    repeated = _run({"t0": [{**_trial([0.1])[0], "histories": {"val/mIoU": [[3, 0.1], [3, 0.1]]}}]})
    assert "t0: val/mIoU logs a step twice ([3, 3])" in chaos.check(repeated, _run({"t0": _trial([0.1])}), [])
    ranked = copy.deepcopy(reference)
    ranked["answer"]["best"] = {"t": [2]}
    assert chaos.check(ranked, reference, []) == ["`attnlab best` differs at best/t[0]: 2 against 1"]


def test_an_epoch_trained_again_is_excused_only_by_a_fault():
    def ev(what, epoch):
        return {"event": what, "trial": "t0", "epoch": epoch, "rank": 0}

    interrupted = [ev("start", 1), ev("end", 1), ev("start", 2), ev("start", 2), ev("end", 2)]
    assert chaos.retrained_epochs(interrupted, []) == []
    again = [ev("start", 1), ev("end", 1), ev("start", 2), ev("end", 2), ev("start", 2), ev("end", 2)]
    assert chaos.retrained_epochs(again, []) == ["t0 trained epoch 2 2 times, 1 after it had ended"]
    cut = chaos.Fault("f0", "kill-driver", "t0", 2, "end", truncate=True, fired_at=1.0)
    assert chaos.retrained_epochs(again, [cut]) == []  # its checkpoint was cut in half
