"""The smoke sweep end to end on CPU with a real local Ray and a real MLflow store: cost-aware
early stopping (pareto-asha) stops trials early, MLflow holds one parent and one child per trial,
`best` ranks them, `report` renders in headless Chromium. The fault drills are in
test_sweep_drills.py."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from repo import ATTNLAB, ROOT, run_attnlab
from services import clean_env

from attnlab.pipeline.config.train import build_train_config
from attnlab.pipeline.tasks.registry import TASKS, data_root

pytestmark = pytest.mark.slow


def _summary(stdout: str) -> dict:
    return json.JSONDecoder().raw_decode(stdout[stdout.index('{\n  "trials"') :])[0]


def _client(workdir: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")


def _smoke_ray_tmpdir() -> Path:
    """The smoke sweep's Ray sessions, apart from the rest of the suite's (short: socket paths)."""
    return Path(os.environ["RAY_TMPDIR"]) / "smoke"


def _runs(workdir: Path, experiment: str):
    client = _client(workdir)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """`attnlab run` (what `make run` runs): the smoke sweep, its ranking and its report."""
    workdir = tmp_path_factory.mktemp("smoke")
    proc = run_attnlab(["run"], workdir, RAY_TMPDIR=str(_smoke_ray_tmpdir()))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    client, runs = _runs(workdir, "smoke")
    trials = []
    for run in runs:
        if run.data.tags.get("attnlab.kind") == "trial":
            epochs = int(run.data.metrics["epochs_done"])
            status = "finished" if run.info.status == "FINISHED" else "stopped"
            trials.append({"trial": run.data.tags["attnlab.trial_key"], "status": status, "epochs": epochs})
    return workdir, {"trials": trials}, proc


def test_make_run_shows_a_live_view_and_the_table_in_under_80_lines(smoke):
    workdir, summary, proc = smoke
    lines = proc.stdout.splitlines() + proc.stderr.splitlines()
    assert len(lines) < 80, "\n".join(lines)
    log = Path(lines[0].rsplit(": ", 1)[1])  # the first line names the libraries' log file
    assert log.is_file() and "Trial status" in log.read_text()  # Tune's own tables went there
    ended = [line for line in lines if line.startswith("segmentation-") and " after epoch " in line]
    assert len(ended) == 6 and all("done" in line for line in ended)
    # the best trial of the full budget, at its last epoch: the number the ranking ranks it by
    assert "best val/mIoU at full budget" in ended[-1] and "last epoch" in ended[-1]
    assert "6/6 done" in ended[-1]
    assert not any("Warning" in line or "INFO" in line for line in lines), "\n".join(lines)
    assert "GFLOPs added over w/o" in proc.stdout and "report:" in proc.stdout  # the ranking, the report
    stopped = sum(t["status"] == "stopped" for t in summary["trials"])
    assert f"6 trials ({stopped} stopped early by pareto-asha); report:" in proc.stdout  # the preset's policy


def test_the_smoke_sweep_keeps_each_checkpoint_once_and_fits_in_600_mb(smoke):
    workdir, summary, _ = smoke
    size = sum(p.stat().st_size for p in workdir.rglob("*") if p.is_file())
    assert size < 600e6, f"{size / 1e6:.0f} MB"
    swept = workdir / "attnlab_runs" / "sweeps" / "smoke"
    assert not list(swept.rglob("*.ckpt"))  # finished and stopped trials never resume
    # Tune's own logs stay (its restore reads them); TensorBoard's are not written (tune/experiment.py).
    assert list(swept.rglob("result.json")) and not list(swept.rglob("events.out.tfevents.*"))
    # Nor does a trial write checkpoints of its own in its working folder (Ray's session): Ray
    # keeps them in the sweep's storage and the best weights go to MLflow.
    assert not list(_smoke_ray_tmpdir().rglob("*.ckpt"))
    assert not (workdir / "attnlab_runs" / "sweeps" / "smoke" / "runs" / "checkpoints").exists()
    written = sorted(p.name + ("/" if p.is_dir() else "") for p in workdir.iterdir())
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *written],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert sorted(ignored) == written  # everything attnlab wrote in the working directory is git-ignored


def test_smoke_sweep_stops_trials_early_and_tracks_everything(smoke, tmp_path):
    workdir, summary, _ = smoke
    trials = summary["trials"]
    assert len(trials) == 6
    assert any(t["status"] == "stopped" and t["epochs"] < 4 for t in trials), trials  # early stopping
    client, runs = _runs(workdir, "smoke")
    parents = [r for r in runs if r.data.tags.get("attnlab.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("attnlab.kind") == "trial"]
    assert len(parents) == 1 and len(children) == 6
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert len({c.data.tags["attnlab.trial_key"] for c in children}) == 6
    # The parent's description names the preset and links the report attached to it.
    description = parents[0].data.tags["mlflow.note.content"]
    assert "preset smoke" in description and "/artifacts/report/index.html" in description
    report = {a.path for a in client.list_artifacts(parents[0].info.run_id, "report")}
    assert "report/index.html" in report
    for child in children:
        assert {"task", "attention", "seed"} <= set(child.data.tags)  # what the UI groups by
        assert {d.dataset.name for d in child.inputs.dataset_inputs} == {
            "tiny-segmentation/train",
            "tiny-segmentation/val",
        }
        assert "system/cpu_utilization_percentage" in child.data.metrics or child.info.status == "KILLED"
        history = client.get_metric_history(child.info.run_id, "val/mIoU")
        assert 1 <= len(history) <= 4
        for key in ("flops", "attention_flops", "added_flops", "params", "latency_ms", "peak_memory_mb"):
            assert f"cost/{key}" in child.data.metrics
        if child.info.status != "FINISHED":
            assert child.info.status == "KILLED" and child.data.tags["attnlab.stopped_early"] == "true"
        # Every trial reached the first rung: what the cost-aware policy decided there is on its run.
        said = child.data.tags["attnlab.early_stopping"]
        rung_one = (
            "kept by the metric rule at epoch 1",
            "kept by the front rule at epoch 1",
            "stopped at epoch 1",
        )
        assert said.startswith(rung_one), said
        assert ("stopped at epoch" in said) == (child.info.status != "FINISHED"), said
        if child.info.status == "FINISHED":  # paused at its rungs: continued, never "resumed" (no fault)
            assert "attnlab.resumed" not in child.data.tags, child.data.tags
            assert child.data.tags["attnlab.continued"] == (
                "continued after epoch 3, once its early-stopping rung was decided"
            )
        # Every trial, stopped ones too, keeps its best epoch's weights, and only those, in MLflow.
        names = {a.path for a in client.list_artifacts(child.info.run_id, "checkpoints")}
        assert names == {"checkpoints/best.ckpt"}
    child = children[0]
    path = client.download_artifacts(child.info.run_id, "checkpoints/best.ckpt", str(tmp_path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert "optimizer_states" not in state
    cfg = build_train_config(
        {"task": "segmentation", "attention": child.data.tags["attention"], "out_dir": str(tmp_path)},
        preset="tiny",
    )
    module = TASKS["segmentation"].make_module(cfg, TASKS["segmentation"].make_data(cfg, data_root(cfg)))
    module.load_state_dict(state["state_dict"])  # strict: every weight of the trial's model


def test_best_ranks_equal_budgets_and_lists_stopped_trials_after(smoke):
    workdir, summary, _ = smoke
    proc = run_attnlab(
        ["best", "--experiment", "smoke", "--format", "json", "--cost", "attention_flops"], workdir
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)["segmentation"]
    rows = result["ranking"]
    assert len(rows) == 6
    full = [r for r in rows if not r["stopped_early"]]
    cut = [r for r in rows if r["stopped_early"]]
    assert rows == full + cut and full and cut  # early stopping cut some; they come after, unranked
    assert [r["rank"] for r in full] == list(range(1, len(full) + 1)) and all(r["rank"] is None for r in cut)
    assert all(r["epochs"] == 4 for r in full) and all(r["epochs"] < 4 for r in cut)
    stopped_at = {
        t["trial"].split("-")[1]: t["epochs"] for t in summary["trials"] if t["status"] == "stopped"
    }
    assert {r["attention"].replace("w/o", "wo").replace("+", "_"): r["epochs"] for r in cut} == stopped_at
    assert all(a["metric"] >= b["metric"] for a, b in zip(full, full[1:]))
    assert all(
        r["ci_low"] is None and r["ci_high"] is None and r["p_front"] is None and r["seeds"] == 1
        for r in rows
    )  # one seed everywhere: no spread, no P(front)
    front = {
        r["attention"]
        for r in full
        if not any(
            o["metric"] >= r["metric"]
            and o["cost"] <= r["cost"]
            and (o["metric"] > r["metric"] or o["cost"] < r["cost"])
            for o in full
        )
    }
    assert set(result["pareto_front"]) == front and not front & {r["attention"] for r in cut}
    assert full[0]["attention"] in front  # the best full-budget row is always on the front
    csv_out = run_attnlab(["best", "--experiment", "smoke", "--format", "csv"], workdir).stdout
    header = csv_out.splitlines()[0].split(",")
    assert header[:3] == ["task", "rank", "attention"] and {
        "epochs",
        "stopped_early",
        "ci_low",
        "ci_high",
    } <= set(header)
    rows_by_rung = [line.rsplit(",", 1)[1] for line in csv_out.splitlines()[1:]]
    assert header[-1] == "rung" and rows_by_rung.count("") == 6  # the full-budget table; rungs follow
    assert "1" in rows_by_rung  # every trial reached the first rung


def test_report_renders_in_headless_chromium(smoke, tmp_path):
    workdir, summary, _ = smoke
    proc = run_attnlab(["report", "--experiment", "smoke", "--out", str(tmp_path / "report")], workdir)
    assert proc.returncode == 0, proc.stderr
    index = tmp_path / "report" / "index.html"
    pngs = {p.name for p in (tmp_path / "report").glob("*.png")}
    finished = sum(t["status"] == "finished" for t in summary["trials"])
    # Sections only for what the runs hold: a Figure 3 view needs two full-budget trials; with
    # fewer than three, the same view at the largest rung more reached (every trial reached the
    # first); the smoke grid has no E2 (0100) spec to set deformable convolution against.
    expected = {"segmentation-accuracy-vs-cost.png"} if finished >= 2 else set()
    rung_views = {p for p in pngs if p.startswith("segmentation-accuracy-vs-cost-rung")}
    assert len(rung_views) == (finished < 3) and index.is_file() and pngs == expected | rung_views
    html = index.read_text()
    assert "Per-term ablation, by val/mIoU" in html and "Pareto front" in html and "against E2" not in html
    chromium = next(p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists())
    probe = tmp_path / "probe.html"
    probe.write_text(
        html.replace(
            "</body>",
            """<script>
      window.addEventListener('load', () => {
        const imgs = [...document.images];
        const done = imgs.filter(i => i.complete && i.naturalWidth > 100).length;
        document.title = 'LOADED ' + done + '/' + imgs.length;
      });</script></body>""",
        )
    )
    out = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chrome'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    loaded = f"<title>LOADED {len(pngs)}/{len(pngs)}</title>"
    assert loaded in out.stdout, out.stdout[:500] + out.stderr[-500:]


def test_a_trial_after_another_in_its_process_reruns_standalone_to_the_last_digit(smoke, tmp_path):
    """Trials share a warm process (Tune reuses it): one that ran after another there gives exactly
    the numbers its recorded rerun command gives standalone, so no state leaked into it; the
    command (thread count included) is on the trial's run and in `best --format json`."""
    workdir, _, _ = smoke
    client, runs = _runs(workdir, "smoke")
    trials = sorted(
        (r for r in runs if r.data.tags.get("attnlab.kind") == "trial"), key=lambda r: r.info.start_time
    )
    processes = [r.data.tags["attnlab.trial_process"] for r in trials]
    later = [r for i, r in enumerate(trials) if processes[i] in processes[:i]]
    assert later, f"no trial reused a process: {processes}"
    trial = later[0]
    command = trial.data.tags["attnlab.rerun"]
    assert command.startswith(
        "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 attnlab train --task segmentation --config-json "
    )
    rerun = subprocess.run(
        f"{command} --experiment rerun --no-progress --no-system-metrics",
        shell=True,
        cwd=tmp_path,
        env=clean_env(PATH=f"{Path(ATTNLAB).parent}:/usr/bin:/bin"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    alone = json.loads(rerun.stdout[rerun.stdout.index("{\n") :])["run_id"]
    standalone = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for key in ("val/mIoU", "train/loss_step", "val/IoU_road"):  # a stopped trial logs no epoch-end loss
        in_sweep = [(m.step, m.value) for m in client.get_metric_history(trial.info.run_id, key)]
        by_itself = [(m.step, m.value) for m in standalone.get_metric_history(alone, key)]
        assert in_sweep and in_sweep == by_itself[: len(in_sweep)], key  # exactly, every epoch it trained
    best = json.loads(run_attnlab(["best", "--experiment", "smoke", "--format", "json"], workdir).stdout)
    rows = best["segmentation"]["ranking"]
    reruns = {run: cmd for row in rows for run, cmd in zip(row["runs"], row["reruns"])}
    assert reruns[trial.info.run_id] == command
