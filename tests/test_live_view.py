"""The sweep's live view tells a trial that trained its own budget (a grid entry's or its preset's,
when the sweep sets none) from one that early stopping cut."""

import io
from types import SimpleNamespace

import pytest

from attnlab.tune.live_view import LiveView, showing


def _trial(key: str, epoch: int, budget: int | None):
    result = {"epoch": epoch, "score": 0.25, **({"budget": budget} if budget else {})}
    return SimpleNamespace(
        config={"trial": {"trial_key": key, "task": "translation"}}, last_result=result, status="TERMINATED"
    )


@pytest.mark.parametrize(
    "sweep_epochs,epoch,budget,said",
    [
        (None, 2, 2, "finished"),  # no sweep-wide budget: the trial's own decides
        (None, 1, 2, "stopped"),
        (4, 2, 2, "finished"),  # the trial's own budget wins over the sweep's
        (4, 2, None, "stopped"),  # a trial that reports none: the sweep's
        (None, 3, None, "finished"),  # nothing known: it ended on its own
    ],
)
def test_a_trial_ends_finished_at_its_own_budget(sweep_epochs, epoch, budget, said):
    view, out = LiveView(1, sweep_epochs), io.StringIO()
    trial = _trial("translation-k-s0", epoch, budget)
    with showing(out):
        view.on_trial_complete(0, [trial], trial)
    assert view.ended == {"translation-k-s0": said}
    assert out.getvalue().startswith(f"translation-k-s0: {said} after epoch {epoch}, val/bleu 0.2500")
