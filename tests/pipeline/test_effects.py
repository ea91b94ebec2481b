"""Term effects from the grid as a factorial design, on runs logged into a real MLflow store with
planted effects: the fit recovers them inside its intervals; terms a design cannot separate are
named with the codes that would separate them; translation is fitted per site."""

import itertools
import json
import random
import subprocess

import pytest
from logged_runs import log_curve, log_trial
from repo import ATTNLAB
from services import clean_env

from attnlab.pipeline.analysis.effects import DESIGN_CODES, effects, render, terms_of
from attnlab.pipeline.analysis.ranking import fetch_runs

MAIN = {"E1": 0.004, "E2": 0.050, "E3": 0.080, "E4": -0.020}
SEED_BLOCK = {0: 0.0, 1: 0.030}


def _planted(terms, seed, rng, interaction=0.0) -> float:
    e = dict(zip(MAIN, terms))
    value = 0.30 + sum(MAIN[t] * on for t, on in e.items()) + SEED_BLOCK[seed]
    return value + interaction * e["E2"] * e["E3"] + rng.gauss(0, 0.004)


@pytest.fixture
def store(store):
    """(uri, client, id of the experiment "grid") of the shared store (conftest)."""
    return store.uri, store.client, store.experiment("grid")


def _log_grid(client, exp, codes, interaction=0.0, extra=()):
    rng = random.Random(7)
    for code, seed in itertools.product(codes, SEED_BLOCK):
        value = _planted(terms_of(code), seed, rng, interaction)
        log_trial(client, exp, "segmentation", code, seed, {"val/mIoU": value})
    for spec in extra:  # not a point of the design
        log_trial(client, exp, "segmentation", spec, 0, {"val/mIoU": 0.9})


def _by_term(designs):
    (design,) = designs
    return design, {e.term: e for e in design.effects}


def test_planted_main_effects_and_an_interaction_are_recovered_inside_their_intervals(store):
    uri, client, exp = store
    _log_grid(client, exp, DESIGN_CODES, interaction=0.040, extra=["deform", "0010+deform"])
    design, got = _by_term(effects(fetch_runs(uri, "grid")))
    assert len(design.points) == 32 and design.seeds == ["0", "1"]  # convolutions are not design points
    for term, planted in MAIN.items():
        e = got[term]
        assert e.kind == "main" and e.n_runs == 32
        # the main-effects model averages the interaction into E2 and E3: half of it each
        expected = planted + (0.020 if term in ("E2", "E3") else 0.0)
        assert e.ci_low < expected < e.ci_high, (term, e)
        assert e.ci_high - e.ci_low < 0.03
    pair = got["E2:E3"]
    assert pair.kind == "interaction" and pair.ci_low < 0.040 < pair.ci_high and pair.ci_low > 0
    assert got["E1:E4"].ci_low < 0 < got["E1:E4"].ci_high  # none planted


def test_by_hand_two_codes_and_two_seeds_give_the_paired_difference(store):
    """w/o and 0010 only: E3's effect is the mean difference, E1, E2, E4 cannot be separated."""
    uri, client, exp = store
    for seed, (off, on) in enumerate([(0.30, 0.36), (0.32, 0.40)]):
        log_trial(client, exp, "segmentation", "w/o", seed, {"val/mIoU": off})
        log_trial(client, exp, "segmentation", "0010", seed, {"val/mIoU": on})
    design, got = _by_term(effects(fetch_runs(uri, "grid")))
    assert got["E3"].estimate == pytest.approx(0.07)  # (0.06 + 0.08) / 2
    assert got["E3"].ci_low < 0.07 < got["E3"].ci_high
    for term in ("E1", "E2", "E4"):
        assert got[term].estimate is None and f"0{term[1]}" not in got[term].would_separate
    assert "1000" in got["E1"].would_separate and "interactions not fitted" in design.note


def test_a_design_missing_codes_names_the_terms_and_the_codes_that_would_separate_them(store):
    uri, client, exp = store
    _log_grid(client, exp, ["w/o", "1000", "0100", "1100", "0011"])  # E3 and E4 only ever on together
    design, got = _by_term(effects(fetch_runs(uri, "grid")))
    assert got["E1"].estimate is not None and got["E2"].estimate is not None
    present = ("w/o", "1000", "0100", "1100", "0011")
    separating = [c for c in DESIGN_CODES if c not in present and c[2] != c[3]]  # E3 on without E4, or back
    assert separating == ["0001", "0010", "0101", "0110", "1001", "1010", "1101", "1110"]
    for term in ("E3", "E4"):
        e = got[term]
        assert e.estimate is None and e.ci_low is None and e.would_separate == separating


def test_rung_effects_count_stopped_trials_at_the_epoch_they_reached(store):
    uri, client, exp = store
    log_curve(client, exp, "w/o", 0, [0.10, 0.20], 0.0, False)
    log_curve(client, exp, "w/o", 1, [0.12, 0.22], 0.0, False)
    log_curve(client, exp, "0010", 0, [0.15], 1.0, True)  # stopped after its first epoch
    log_curve(client, exp, "0010", 1, [0.19], 1.0, True)
    runs = fetch_runs(uri, "grid")
    _, at_one = _by_term(effects(runs, epochs=1, uri=uri))
    assert at_one["E3"].estimate == pytest.approx(0.06) and at_one["E3"].n_runs == 4
    (full,) = effects(runs)
    assert len(full.points) == 2  # the full budget holds only w/o


def test_translation_is_fitted_per_site_with_the_other_sites_held(store):
    uri, client, exp = store
    rng = random.Random(3)
    for code, seed in itertools.product(["1000", "0100", "0010", "0001", "1100"], (0, 1)):
        value = 20 + 2 * terms_of(code)[2] + seed + rng.gauss(0, 0.05)
        log_trial(
            client,
            exp,
            "translation",
            f"enc_self={code},dec_self=1000,enc_dec=1000",
            seed,
            {"val/bleu": value},
        )
    designs = effects(fetch_runs(uri, "grid"))
    sites = {d.site: d for d in designs}
    # Only enc_self varies; dec_self, enc_dec and the joint self site each hold one code (1000 at
    # its 2 seeds) and estimate nothing, so they are left out beside it.
    assert set(sites) == {"enc_self"}
    assert len(sites["enc_self"].points) == 10
    e3 = next(e for e in sites["enc_self"].effects if e.term == "E3")
    assert e3.ci_low < 2 < e3.ci_high


def test_both_self_attention_sites_set_together_are_one_design_that_judges_findings_1_and_3(store):
    """The grid the translation presets run: both self sites take a code together (encoder-decoder
    held at 1000), read as the joint site `self`; findings 1 and 3 are judged on its effects."""
    uri, client, exp = store
    rng = random.Random(5)
    planted = {"E1": -0.5, "E2": 1.0, "E3": 2.0, "E4": 1.5}
    for code, seed in itertools.product(DESIGN_CODES, (0, 1)):
        value = 20 + sum(w * on for w, on in zip(planted.values(), terms_of(code))) + rng.gauss(0, 0.1)
        spec = f"enc_self={code},dec_self={code},enc_dec=1000"
        log_trial(client, exp, "translation", spec, seed, {"val/bleu": value})
    runs = fetch_runs(uri, "grid")
    # Each single self site, the other held, holds one code beside the joint design: left out.
    assert [d.site for d in effects(runs)] == ["self"]
    joint = next(d for d in effects(runs) if d.site == "self")
    assert len(joint.points) == 32
    for e in joint.effects:
        if e.kind == "main":  # within two half-widths of its 95% interval (about 4 standard errors)
            assert abs(e.estimate - planted[e.term]) < e.ci_high - e.ci_low, e
    from attnlab.pipeline.analysis.findings import findings

    by_label = {(v.finding, v.comparison): v for v in findings(runs)}
    one = by_label[(1, "(E3+E4) - (E1+E2)")]  # 3.5 - 0.5 = +3.0
    assert one.basis == "effects" and one.runs == 32 and one.verdict == "reproduced"
    assert one.ci_low < 3.0 < one.ci_high
    three = by_label[(3, "(E2+E3) - (E1+E4)")]  # 3.0 - 1.0 = +2.0
    assert three.basis == "effects" and three.verdict == "reproduced"


def test_the_python_api_gives_the_same_designs(store):
    import attnlab

    uri, client, exp = store
    _log_grid(client, exp, DESIGN_CODES)
    (design,) = attnlab.effects("grid", tracking_uri=uri)
    assert [e.term for e in design.effects if e.kind == "main"] == list(MAIN)
    low, high = design.contrast({"E3": 1, "E4": 1, "E1": -1, "E2": -1})[1:3]
    assert low < sum(MAIN[t] * w for t, w in zip(MAIN, (-1, -1, 1, 1))) < high


def test_the_cli_prints_one_json_row_per_task_site_and_term(store, tmp_path):
    uri, client, exp = store
    _log_grid(client, exp, DESIGN_CODES)
    cmd = [ATTNLAB, "effects", "--experiment", "grid", "--tracking-uri", uri]
    out = subprocess.run(
        [*cmd, "--format", "json"], capture_output=True, text=True, env=clean_env(), cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {(r["task"], r["site"], r["term"]) for r in rows if r["kind"] == "main"} == {
        ("segmentation", "network", t) for t in MAIN
    }
    assert {"task", "site", "term", "estimate", "ci_low", "ci_high", "n_runs"} <= set(rows[0])
    table = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), cwd=tmp_path)
    assert table.returncode == 0 and "OLS coefficient of its 0/1 indicator" in table.stdout
    assert "segmentation: effects on val/mIoU (full budget; 32 runs of 16 code(s), 2 seed(s))" in table.stdout
    bad = subprocess.run(
        [*cmd, "--epochs", "0"], capture_output=True, text=True, env=clean_env(), cwd=tmp_path
    )
    assert bad.returncode == 2 and "--epochs 0" in bad.stderr


def test_one_code_renders_a_line_saying_nothing_is_estimable(store):
    uri, client, exp = store
    log_trial(client, exp, "segmentation", "1111", 0, {"val/mIoU": 0.4})
    text = render(effects(fetch_runs(uri, "grid")), "table")
    assert "1 run(s) of 1 code(s)" in text and "no term can be estimated" in text
