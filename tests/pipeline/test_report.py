"""The report shows what the runs hold, in units people read, with labels that never overlap.

Runs are logged into a real MLflow store with chosen metrics, so every section's presence, order
and numbers are known in advance.
"""

import itertools
import re

import matplotlib.pyplot as plt
from logged_runs import log_curve, log_trial
from matplotlib.text import Text

from attnlab.pipeline.analysis.ranking import Row, fetch_runs
from attnlab.pipeline.analysis.report import scatter_figure, write_report


def _log(client, exp, task, spec, seed, metric, value, gflops, stopped=False, epochs=4):
    metrics = {
        metric: value,
        "epochs_done": epochs,
        "cost/added_flops": gflops * 1e9,
        "cost/attention_flops": gflops * 1e9,
    }
    log_trial(client, exp, task, spec, seed, metrics, stopped)


def _report(store, tmp_path, logged) -> str:
    exp = store.experiment("r")
    for args in logged:
        _log(store.client, exp, *args)
    index = write_report(fetch_runs(store.uri, "r"), "r", tmp_path / "report")
    return re.sub(r'src="data:image/png;base64,[^"]*"', "", index.read_text())  # the text, not the PNGs


def test_sections_units_and_order_follow_the_runs(store, tmp_path):
    seg = [
        ("segmentation", spec, seed, "val/mIoU", value + seed * 0.01, gflops)
        for spec, value, gflops in [
            ("w/o", 0.30, 0.0),
            ("0100", 0.40, 0.3372),
            ("0010", 0.45, 0.1),
            ("deform", 0.42, 0.05),
            ("0010+deform", 0.50, 0.15),
        ]
        for seed in (0, 1)
    ]
    seg.append(("segmentation", "1111", 0, "val/mIoU", 0.90, 2.0, True, 1))  # stopped after epoch 1
    tr = [
        ("translation", f"enc_self={e},dec_self=1000,enc_dec={d}", 0, "val/bleu", bleu, 0.5)
        for e, d, bleu in [("1000", "1000", 20.0), ("0010", "1000", 22.0), ("0100", "1000", 21.0)]
    ] + [("translation", "enc_self=1000,dec_self=1000,enc_dec=1100", 0, "val/bleu", 23.0, 0.6)]
    page = _report(store, tmp_path, seg + tr)

    # Units: GFLOPs added over w/o with three decimals, never raw FLOPs.
    assert "GFLOPs added over w/o" in page and "0.337" in page and "337200000" not in page
    # Findings: only the comparisons these runs hold; the rest are counted, not listed.
    assert "deform vs 0100" in page and "no finished runs of" not in page
    assert "need runs this experiment lacks" in page
    # The E2 comparison names only what is there: deformable, no dynamic run.
    assert "Deformable convolution against E2 (0100)" in page and "dynamic" not in page.lower()
    # The segmentation table is sorted by val/mIoU and says so; the stopped trial comes last.
    seg_part = page[page.index("<h2>segmentation</h2>") : page.index("<h2>translation</h2>")]
    assert "Per-term ablation, by val/mIoU" in seg_part and "val/mIoU (mean [95% CI])" in seg_part
    order = [
        seg_part.index(f"<td>{s}</td>") for s in ("0010+deform", "0010", "deform", "0100", "w/o", "1111")
    ]
    assert order == sorted(order)
    assert "1 (stopped early)" in seg_part and "1 of 6 configurations were stopped early" in seg_part
    effects = page[page.index("<h2>Effects of the terms E1-E4</h2>") : page.index("<h2>segmentation</h2>")]
    assert "segmentation: effects on val/mIoU (full budget; 6 runs of 3 code(s), 2 seed(s))" in effects
    assert "<td>E3</td><td>+0.1500</td>" in effects and "<td>E1</td><td>cannot separate</td>" in effects
    # Translation: a Figure 3 view for each site that varies (enc_self, enc_dec), none for dec_self.
    tr_part = page[page.index("<h2>translation</h2>") :]
    assert "enc_self attention: val/bleu" in tr_part and "enc_dec attention: val/bleu" in tr_part
    assert "dec_self attention" not in tr_part
    pngs = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert pngs == [
        "segmentation-accuracy-vs-cost.png",
        "segmentation-conv-vs-e2.png",
        "segmentation-effects.png",  # w/o, 0100, 0010 at two seeds: E2 and E3 with intervals
        "translation-enc_dec-accuracy-vs-cost.png",
        "translation-enc_self-accuracy-vs-cost.png",
    ]  # the front is drawn on the accuracy-against-cost view, not again on its own


def test_no_e2_spec_means_no_e2_section(store, tmp_path):
    page = _report(
        store,
        tmp_path,
        [("segmentation", s, 0, "val/mIoU", v, g) for s, v, g in [("w/o", 0.3, 0.0), ("deform", 0.4, 0.1)]],
    )
    assert "against E2" not in page and "Per-term ablation" in page and "Pareto front" in page


def test_with_fewer_than_three_full_budgets_the_largest_rung_shows_the_stopped_trials(store, tmp_path):
    client, exp, uri = store.client, store.experiment("r"), store.uri
    log_curve(client, exp, "1111", 0, [0.20, 0.30, 0.40], 9e9, False)
    log_curve(client, exp, "w/o", 0, [0.15, 0.22, 0.31], 0.0, False)
    log_curve(client, exp, "0010", 0, [0.25, 0.33], 1e9, True)
    log_curve(client, exp, "deform", 0, [0.10, 0.28], 5e8, True)
    log_curve(client, exp, "0100", 0, [0.12], 3e9, True)
    index = write_report(fetch_runs(uri, "r"), "r", tmp_path / "report", uri=uri)
    page = index.read_text()
    assert sorted(p.name for p in (tmp_path / "report").glob("*.png")) == [
        "segmentation-accuracy-vs-cost-rung2.png",  # 4 configurations reached 2 epochs; 0100 did not
        "segmentation-accuracy-vs-cost.png",
    ]
    rung = page[page.index("At 2 epoch(s): every configuration that reached it") :]
    assert (
        all(f"<td>{s}</td>" in rung for s in ("1111", "w/o", "0010", "deform"))
        and "<td>0100</td>" not in rung
    )
    assert "0.3300" in rung and "Pareto front at 2 epoch(s)" in page


def _overlaps(fig) -> list[tuple[str, str]]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [
        (t.get_text(), t.get_window_extent(renderer))
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip()
    ]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]


def test_labels_never_overlap_even_when_points_coincide():
    specs = ["w/o", "1000", "0100", "0010", "0001", "1100", "1010", "1001", "0110", "0101", "0011", "1111"]
    rows = [
        # pairs of near-identical points, far apart from the next pair: where names on points collide
        Row("segmentation", s, 0.5 + (i // 2) * 0.05, None, None, (i // 2) * 1e8 + (i % 2) * 1e3, 1, 4, False)
        for i, s in enumerate(specs)
    ]
    fig = scatter_figure(
        rows, specs, "segmentation: val/mIoU against attention GFLOPs", "val/mIoU", "attention_flops"
    )
    try:
        assert _overlaps(fig) == []
    finally:
        plt.close(fig)


def _legend_styles(fig) -> dict[str, tuple]:
    ax = fig.axes[0]
    handles, labels = ax.get_legend_handles_labels()
    out = {}
    for handle, label in zip(handles, labels):
        line = handle[0] if isinstance(handle, tuple) else handle.lines[0]
        out[label.split(" ")[0].rstrip(",")] = (line.get_marker(), line.get_color())
    return out


def test_a_spec_keeps_its_marker_and_colour_in_every_plot():
    def row(spec, metric):
        return Row("segmentation", spec, metric, metric - 0.01, metric + 0.01, 1e8, 2, 4, False)

    first = scatter_figure([row("w/o", 0.5), row("0010", 0.52)], ["w/o", "0010"], None, "val/mIoU", "flops")
    second = scatter_figure(
        [row("1111", 0.55), row("deform", 0.51), row("w/o", 0.5)],
        ["1111", "deform", "w/o"],
        None,
        "val/mIoU",
        "flops",
    )
    try:
        a, b = _legend_styles(first), _legend_styles(second)
        assert a["w/o"] == b["w/o"] and a["0010"] != b["1111"] != b["deform"]
        assert first.axes[0].get_title() == ""  # the report's heading says what it shows
    finally:
        plt.close(first)
        plt.close(second)


def test_the_y_axis_never_magnifies_a_difference_below_the_seed_spread():
    close = [
        Row("segmentation", "w/o", 0.1710, 0.1610, 0.1810, 0.0, 2, 4, False),
        Row("segmentation", "0010", 0.1715, 0.1615, 0.1815, 1e8, 2, 4, False),
    ]
    one_seed = [
        Row("segmentation", s, 0.1710 + i * 0.0005, None, None, i * 1e8, 1, 4, False)
        for i, s in enumerate(("w/o", "0010"))
    ]
    spread = scatter_figure(close, ["w/o", "0010"], None, "val/mIoU", "flops")
    bare = scatter_figure(one_seed, ["w/o", "0010"], None, "val/mIoU", "flops")
    try:
        low, high = spread.axes[0].get_ylim()
        assert high - low >= 4 * 0.01 - 1e-9  # at least four half intervals tall
        low, high = bare.axes[0].get_ylim()
        assert high - low >= 0.05 * 0.171  # one seed: at least 5% of the metric
        assert "one seed each: no interval" in [t.get_text() for t in bare.axes[0].texts]
    finally:
        plt.close(spread)
        plt.close(bare)
