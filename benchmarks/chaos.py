"""The chaos soak (issue 38): one sweep under a seeded storm of faults, and a checker that asks
whether its answer is still the answer of the same sweep without faults.

The sweep: 27 short trials (CamVid-like segmentation and translation on generated data, 4 and 5
configurations x 3 seeds, 4 epochs, pareto-asha, 2 at a time; one translation configuration's 3
trials on 2 Ray Train workers each, the rest on one), every trial carrying
benchmarks/chaos_faults.py's callback. The faults, drawn from `--seed` and anchored to events
(trial K at the middle or end of its epoch N: chaos_faults.py), so a seed replays the same storm
on a loaded machine; each anchor is an epoch the fault-free run trained, so it is reached:

- `kill-trial`: the trial's process SIGKILLs itself (3 times, once mid-epoch: Tune's trial actor,
  or a Ray Train worker of a two-worker trial, whose rank is drawn too; at least once; once the
  soak kills it, after cutting its newest checkpoint to half, as a crash mid-upload leaves it);
- `kill-driver`: the driver's process group SIGKILLed, then `attnlab resume NAME` (twice; once
  with the newest checkpoint of the trial at the anchor truncated to half, as a crash mid-write
  leaves it);
- `interrupt`: SIGINT to the driver's group, as a terminal's Ctrl-C, then the same `attnlab
  sweep` command (twice);
- `tracking-stop`: the MLflow server SIGSTOPped for 20-60 s (twice); `tracking-restart`: killed,
  and started again on its port after 5-20 s (once).

Every process the soak signals it started itself (the drivers, the MLflow server, each in a process
group of its own), or it finds by the tag its drivers carry in their environment (ATTNLAB_CHAOS_DIR,
which each Ray process inherits): never by name. The embedded Ray gets a temp dir of its own.

The fault-free run is cached under ~/.cache/attnlab/chaos, keyed by the code (every tracked file
of the package and these two scripts) and the sweep config, and reused while both are unchanged.

The checker, on both MLflow stores and the trials' event logs (`check`):
1. every trial has exactly one run, FINISHED (or KILLED and tagged stopped early by the policy),
   with the fault-free run's status and early-stopping decision;
2. each of its metric histories (train/*, val/*) has no gap and no repeated step, and equals the
   fault-free run's value for value;
3. no epoch was trained twice, except one a fault interrupted (started, never ended) and those a
   truncated checkpoint took back;
4. `attnlab best --format json` (the ranking, the front, P(front), the rungs) and `attnlab findings
   --format json` equal the fault-free run's.
Where they differ it names which numbers and where.

    python benchmarks/chaos.py --seed 1 [--workdir DIR] [--race | --race-stops]

Prints the schedule, what each fault hit and how long the sweep took to recover from it, and the
checker's verdict; exits 1 when the checker finds a difference.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ATTNLAB = str(Path(sys.executable).with_name("attnlab"))
NAME = "chaos"
DIR_ENV = "ATTNLAB_CHAOS_DIR"

SEGMENTATION = '["w/o", "0010", "0001", "1111"]'
TRANSLATION = (
    '["enc_self=w/o,dec_self=w/o,enc_dec=1000", "enc_self=0010,dec_self=1000,enc_dec=1000", '
    '"enc_self=1000,dec_self=1000,enc_dec=1000", "enc_self=1111,dec_self=1000,enc_dec=1000"]'
)


def sweep_config(race: bool, quick: bool = False, race_stops: bool = False) -> str:
    """The soak's sweep: pareto-asha, or (`race`) seeds raced with no early stopping, or
    (`race_stops`) raced with pareto-asha inside each round; `quick`: two configurations per task,
    one seed, two epochs (to try the soak's own plumbing)."""
    seg, trans, seeds, epochs = SEGMENTATION, TRANSLATION, "[0, 1, 2]", 4
    if quick:
        seg, seeds, epochs = '["w/o", "0010"]', "[0]", 2
        trans = TRANSLATION.split(', "enc_self=1000')[0] + "]"
    pareto = "early_stopping: {policy: pareto-asha, cost: added_flops, grace_period: 1, reduction_factor: 2}"
    seeds_raced = "seeds: {policy: race, min: 2, max: 4, budget: 24}"
    policy = pareto
    if race or race_stops:
        policy = f"{pareto if race_stops else 'early_stopping: {policy: none}'}\n{seeds_raced}"
    return f"""
name: {NAME}
max_epochs: {epochs}
grid:
  - task: segmentation
    specs: {seg}
    seeds: {seeds}
    preset: tiny
    overrides: {{segmentation: {{crop_size: 64}}, data: {{batch_size: 4}}, limit_train_batches: 4}}
  - task: translation
    specs: {trans}
    seeds: {seeds}
    preset: tiny
    overrides: {{limit_train_batches: 6, translation: {{max_tokens: 512, beam: 2}}}}
  - task: translation
    specs: ["enc_self=1111,dec_self=1111,enc_dec=1000"]
    seeds: {seeds}
    preset: tiny
    overrides: {{limit_train_batches: 6, translation: {{max_tokens: 512, beam: 2}}}}
    resources: {{workers_per_trial: 2, cpus_per_worker: 1}}
{policy}
max_concurrent_trials: 2
max_failures: 4
callbacks: ["chaos_faults:ChaosFaults"]
"""


# ---------------------------------------------------------------------------------------------
# The schedule


@dataclass
class Fault:
    id: str
    kind: str  # kill-trial | kill-driver | interrupt | tracking-stop | tracking-restart
    trial: str
    epoch: int  # 1-based
    at: str  # mid | end
    seconds: float = 0.0  # tracking faults: how long the server is away
    truncate: bool = False  # kill-trial, kill-driver: the anchor trial's newest checkpoint cut to half
    rank: int = 0
    hit: str = ""  # what it hit, filled in as it fires
    fired_at: float | None = None
    recovered_s: float | None = None


KINDS = [  # (fault, anchor, the anchor trial's newest checkpoint truncated with it)
    ("kill-trial", "end", False),
    ("kill-trial", "end", True),
    ("kill-trial", "mid", False),
    ("kill-driver", "end", True),
    ("kill-driver", "end", False),
    ("interrupt", "end", False),
    ("interrupt", "mid", False),
    ("tracking-stop", "end", False),
    ("tracking-stop", "mid", False),
    ("tracking-restart", "end", False),
]


def schedule(seed: int, events: list[dict]) -> list[Fault]:
    """The storm for `seed`: each fault at an anchor of its own, among the events the fault-free
    run logged (an epoch's middle where it started one, its end where it ended one: a trial Tune
    pauses at a rung never gets past its report there), on a trial of its own where there are
    enough trials."""
    rng = random.Random(seed)
    at = {"start": "mid", "end": "end"}
    anchors = sorted({(e["trial"], e["epoch"], at[e["event"]]) for e in events if e["rank"] == 0})
    ranks: dict[str, int] = {}
    for e in events:
        ranks[e["trial"]] = max(ranks.get(e["trial"], 0), e["rank"])
    used_trials, used = set(), set()
    faults = []
    for i, (kind, where, truncate) in enumerate(KINDS):
        free = [a for a in anchors if a not in used]
        if i == 0 and any(ranks.values()):  # the first trial kill hits a Ray Train worker
            free = [a for a in free if ranks[a[0]] > 0] or free
        mine = [a for a in free if a[2] == where] or free  # a small sweep: the other kind of anchor
        trial, epoch, where = rng.choice([a for a in mine if a[0] not in used_trials] or mine)
        used_trials.add(trial)
        used.add((trial, epoch, where))
        fault = Fault(f"f{i:02d}", kind, trial, epoch, where, truncate=truncate)
        if kind == "kill-trial":
            fault.rank = rng.randint(0, ranks.get(trial, 0))
        if kind == "tracking-stop":
            fault.seconds = round(rng.uniform(20, 60), 1)
        elif kind == "tracking-restart":
            fault.seconds = round(rng.uniform(5, 20), 1)
        faults.append(fault)
    return faults


# ---------------------------------------------------------------------------------------------
# The processes it starts


class TrackingServer:
    """`mlflow server` on the soak's sqlite store, on loopback; stopped, continued, killed and
    started again on the same port."""

    def __init__(self, workdir: Path):
        self.workdir, self.port, self.proc = workdir, 0, None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from attnlab.tune.local_services import start_mlflow_server

        db = self.workdir / "mlflow.db"
        args = ["--backend-store-uri", f"sqlite:///{db}", "--artifacts-destination"]
        args += [(self.workdir / "mlartifacts").as_uri(), "--workers", "1"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", DIR_ENV))}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        self.proc, url = start_mlflow_server(args, self.workdir / "mlflow-server.log", self.port, env)
        self.port = int(url.rsplit(":", 1)[1])

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            from attnlab.tune.local_services import stop_group

            stop_group(self.proc)


class Driver:
    """One `attnlab sweep` or `attnlab resume` in a process group of its own."""

    def __init__(self, args: list[str], workdir: Path, env: dict, n: int):
        self.args = args
        self.log = workdir / f"driver-{n}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [ATTNLAB, *args],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


def tagged_processes(env: dict) -> list[psutil.Process]:
    """The processes whose environment carries this soak's tag or its Ray's temp dir (its drivers
    and what they started; Ray's agents keep only the latter)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            theirs = proc.environ()
            if proc.pid != os.getpid() and any(theirs.get(k) == env[k] for k in (DIR_ENV, "RAY_TMPDIR")):
                found.append(proc)
    return found


def _alive(proc: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return proc.status() != psutil.STATUS_ZOMBIE
    return False


def kill_leftovers(env: dict) -> int:
    """SIGKILL what a driver left running (Ray's processes outside its group)."""
    procs = tagged_processes(env)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=30)
    return len(procs)


def truncate_newest_checkpoint(storage: Path, trial: str) -> str:
    """Cut the trial's newest checkpoint file to half its size; returns its path (or why none)."""
    files = [p for p in storage.rglob("checkpoint.ckpt") if trial in str(p)]
    if not files:
        return "no checkpoint on disk"
    newest = max(files, key=lambda p: p.stat().st_mtime)
    size = newest.stat().st_size
    with open(newest, "r+b") as f:
        f.truncate(size // 2)
    return f"{newest.relative_to(storage)} cut from {size} to {size // 2} bytes"


# ---------------------------------------------------------------------------------------------
# One run of the sweep, with or without the storm


def read_events(chaos_dir: Path) -> list[dict]:
    path = chaos_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_sweep(workdir: Path, config: str, faults: list[Fault], say) -> dict:
    """Run the sweep in `workdir` until it finishes, applying `faults` as their events come;
    returns {'seconds', 'drivers', 'faults'}."""
    workdir.mkdir(parents=True)
    chaos_dir = workdir / "chaos"
    chaos_dir.mkdir()
    (chaos_dir / "schedule.json").write_text(json.dumps([asdict(f) for f in faults]))
    (workdir / "sweep.yaml").write_text(config)
    ray_tmp = Path(tempfile.mkdtemp(prefix="chaos-ray-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
    env.update(
        {
            DIR_ENV: str(chaos_dir),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])),
            "RAY_TMPDIR": str(ray_tmp),
        }
    )
    tracking = TrackingServer(workdir)
    tracking.start()
    common = ["--tracking-uri", tracking.url, "--no-system-metrics"]
    sweep_cmd = ["sweep", "--config", "sweep.yaml", *common]
    resume_cmd = ["resume", NAME, "--tracking-uri", tracking.url]
    storage = workdir / "attnlab_runs/sweeps"
    pending = {f.id: f for f in faults if f.kind != "kill-trial" or f.truncate}  # the rest kill themselves
    due: list[tuple[float, object]] = []  # (when, what): the server's return, run by this thread
    start, drivers, unexpected = time.time(), 0, []
    driver, waiting = Driver(sweep_cmd, workdir, env, drivers), None  # waiting: the next driver's command
    try:
        while True:
            for fid, fault in list(pending.items()):
                parked = chaos_dir / f"parked-{fid}"
                if not parked.exists():
                    continue
                pid = int(parked.read_text())
                if not psutil.pid_exists(pid):  # it parked as an earlier fault took its driver down:
                    for marker in ("fired", "parked"):  # armed again, for when its event comes again
                        (chaos_dir / f"{marker}-{fid}").unlink()
                    continue
                del pending[fid]
                fault.fired_at = time.time()
                fault.hit = f"{fault.trial} (pid {pid}) parked at epoch {fault.epoch} {fault.at}"
                next_cmd = None
                if fault.kind == "kill-trial":  # with a truncation: its checkpoint cut, then killed
                    fault.hit += "; " + truncate_newest_checkpoint(storage, fault.trial)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    fault.hit += "; SIGKILLed"
                elif fault.kind == "kill-driver":
                    driver.signal(signal.SIGKILL)
                    driver.wait(60)
                    left = kill_leftovers(env)
                    fault.hit += (
                        f"; driver pid {driver.proc.pid} and its group killed, {left} stray processes"
                    )
                    if fault.truncate:
                        fault.hit += "; " + truncate_newest_checkpoint(storage, fault.trial)
                    next_cmd = resume_cmd
                elif fault.kind == "interrupt":
                    driver.signal(signal.SIGINT)
                    (chaos_dir / f"release-{fid}").write_text("")
                    code = driver.wait(180)
                    fault.hit += f"; driver exited {code} after SIGINT"
                    if code is None:
                        driver.signal(signal.SIGKILL)
                        driver.wait(60)
                    kill_leftovers(env)
                    next_cmd = sweep_cmd
                elif fault.kind == "tracking-stop":
                    tracking.signal(signal.SIGSTOP)
                    due.append((time.time() + fault.seconds, lambda: tracking.signal(signal.SIGCONT)))
                    fault.hit += f"; tracking server stopped for {fault.seconds:g} s"
                elif fault.kind == "tracking-restart":
                    tracking.kill()
                    # Started again from this thread: the server dies with the thread that started it.
                    due.append((time.time() + fault.seconds, tracking.start))
                    fault.hit += f"; tracking server killed, started again after {fault.seconds:g} s"
                (chaos_dir / f"release-{fid}").write_text("")
                say(f"  {fault.id} {fault.kind}: {fault.hit}")
                if next_cmd is not None:
                    waiting = next_cmd
            if waiting is not None and not any(what == tracking.start for _, what in due):
                # (a driver started while the server is away would only be told so: exit 2)
                drivers += 1
                driver, waiting = Driver(waiting, workdir, env, drivers), None
            for item in [d for d in due if d[0] <= time.time()]:
                due.remove(item)
                item[1]()
            code = driver.proc.poll()
            if code is not None:
                if code == 0 and not due and waiting is None:
                    time.sleep(10)  # Ray's own shutdown, then nothing of the sweep may be left running
                    left = [f"{p.name()} (pid {p.pid})" for p in tagged_processes(env) if _alive(p)]
                    if left:
                        unexpected.append(
                            f"{len(left)} processes outlived the finished sweep: {', '.join(left)}"
                        )
                    break
                if code != 0 and waiting is None:
                    unexpected.append(f"driver {drivers} ({' '.join(driver.args[:2])}) exited {code} unasked")
                    say(f"  {unexpected[-1]}: resuming (see {driver.log})")
                    kill_leftovers(env)
                    drivers += 1
                    driver = Driver(resume_cmd, workdir, env, drivers)
                    if drivers > len(faults) + 5:
                        raise RuntimeError(f"the sweep does not finish; see {workdir}/driver-*.log")
            time.sleep(0.2)
    finally:
        with contextlib.suppress(Exception):
            tracking.signal(signal.SIGCONT)
        driver.signal(signal.SIGKILL)
        kill_leftovers(env)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    for fault in faults:  # the in-trial kills report themselves
        fired = chaos_dir / f"fired-{fault.id}"
        if fault.kind == "kill-trial" and not fault.truncate and fired.exists():
            info = json.loads(fired.read_text())
            fault.fired_at = info["t"]
            fault.hit = f"{fault.trial} (pid {info['pid']}) killed itself at epoch {fault.epoch} {fault.at}"
    events = read_events(chaos_dir)
    for fault in faults:  # recovery: from the fault to the next epoch the sweep ended after it
        if fault.fired_at is not None:
            later = [
                e["t"] for e in events if e["event"] == "end" and e["t"] > fault.fired_at + fault.seconds
            ]
            fault.recovered_s = round(min(later) - fault.fired_at, 1) if later else None
    answer = collect_answer(workdir, tracking)
    tracking.stop()
    return {
        "seconds": round(time.time() - start, 1),
        "drivers": drivers + 1,
        "unexpected": unexpected,
        "answer": answer,
        "events": events,
    }


# ---------------------------------------------------------------------------------------------
# The answer and the checker

COMPARED_METRICS = ("train/", "val/")


def collect_answer(workdir: Path, tracking: TrackingServer) -> dict:
    """What the checker compares: each trial's run (status, early-stopping decision, metric
    histories) and the ranking and findings as a user asks for them."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.url)
    experiment = client.get_experiment_by_name(NAME)
    trials: dict[str, list[dict]] = {}
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        if run.data.tags.get("attnlab.kind") != "trial":
            continue
        histories = {}
        for key in sorted(run.data.metrics):
            if key.startswith(COMPARED_METRICS):
                history = client.get_metric_history(run.info.run_id, key)
                histories[key] = [
                    [m.step, m.value] for m in sorted(history, key=lambda m: (m.step, m.timestamp))
                ]
        trials.setdefault(run.data.tags["attnlab.trial_key"], []).append(
            {
                "status": run.info.status,
                "early_stopping": run.data.tags.get("attnlab.early_stopping"),
                "stopped_early": run.data.tags.get("attnlab.stopped_early"),
                "histories": histories,
            }
        )
    views = {}
    for view in ("best", "findings"):
        proc = subprocess.run(
            [ATTNLAB, view, "--experiment", NAME, "--tracking-uri", tracking.url, "--format", "json"],
            capture_output=True,
            text=True,
            cwd=workdir,
        )
        views[view] = json.loads(proc.stdout) if proc.returncode == 0 else {"error": proc.stderr[-2000:]}
    return {"trials": trials, **views}


def _without_run_ids(value):
    """A view with the run ids left out (each run has its own)."""
    if isinstance(value, dict):
        return {k: _without_run_ids(v) for k, v in value.items() if k not in ("runs", "run_id", "run_ids")}
    if isinstance(value, list):
        return [_without_run_ids(v) for v in value]
    return value


def _first_difference(a, b, where: str = "") -> str | None:
    if type(a) is not type(b):
        return f"{where}: {a!r} against {b!r}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{where}/{key}: only in the {'fault-free' if key in b else 'chaos'} run"
            found = _first_difference(a[key], b[key], f"{where}/{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} items against {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{where}: {a!r} against {b!r}"


def retrained_epochs(events: list[dict], faults: list[Fault]) -> list[str]:
    """Epochs a trial started more than once that no fault excuses: the start before must have been
    interrupted (no end), or the epoch's checkpoint destroyed (a truncated trial, back to its
    previous checkpoint)."""
    truncated = {f.trial: f.epoch for f in faults if f.truncate and f.fired_at is not None}
    problems = []
    seen: dict[tuple[str, int], list[str]] = {}
    for e in events:
        if e["rank"] == 0:
            seen.setdefault((e["trial"], e["epoch"]), []).append(e["event"])
    for (trial, epoch), marks in sorted(seen.items()):
        starts = marks.count("start")
        ended_before = sum(1 for i, m in enumerate(marks) if m == "end" and "start" in marks[i + 1 :])
        if starts > 1 and ended_before and truncated.get(trial) != epoch:
            problems.append(
                f"{trial} trained epoch {epoch} {starts} times, {ended_before} after it had ended"
            )
    return problems


def check(chaos: dict, reference: dict, faults: list[Fault]) -> list[str]:
    """Every difference between the storm's answer and the fault-free one, in words."""
    problems = []
    mine, theirs = chaos["answer"]["trials"], reference["answer"]["trials"]
    for trial in sorted(set(mine) | set(theirs)):
        runs, want = mine.get(trial, []), theirs.get(trial, [])
        if len(runs) != 1:
            problems.append(f"{trial}: {len(runs)} runs, not one")
            continue
        run, ref = runs[0], want[0] if want else None
        if ref is None:
            problems.append(f"{trial}: not in the fault-free run")
            continue
        stopped = run["status"] == "KILLED" and run["stopped_early"] == "true"
        if run["status"] != ref["status"] or not (run["status"] == "FINISHED" or stopped):
            problems.append(f"{trial}: run {run['status']}, fault-free {ref['status']}")
        for key in ("early_stopping", "stopped_early"):
            if run[key] != ref[key]:
                problems.append(f"{trial}: {key} {run[key]!r}, fault-free {ref[key]!r}")
        for key, history in run["histories"].items():
            steps = [s for s, _ in history]
            if len(set(steps)) != len(steps):
                problems.append(f"{trial}: {key} logs a step twice ({steps})")
        found = _first_difference(run["histories"], ref["histories"], trial)
        if found:
            problems.append(f"metric history {found}")
    problems += retrained_epochs(chaos["events"], faults)
    for view in ("best", "findings"):
        found = _first_difference(
            _without_run_ids(chaos["answer"][view]), _without_run_ids(reference["answer"][view]), view
        )
        if found:
            problems.append(f"`attnlab {view}` differs at {found}")
    return problems


# ---------------------------------------------------------------------------------------------


def code_key(config: str) -> str:
    """The code and config the fault-free run depends on: a digest of every tracked file of the
    package (and these scripts), as they are on disk, and the sweep config."""
    listed = subprocess.run(
        [
            "git",
            "ls-files",
            "lightning_modules",
            "pipeline",
            "tune",
            "attnlab",
            "benchmarks/chaos*.py",
            "pyproject.toml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    digest = hashlib.sha256(config.encode())
    for name in sorted(listed):
        path = ROOT / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def fault_free(config: str, cache: Path, workdir: Path, say) -> dict:
    """The sweep without faults: from the cache while the code and config are unchanged."""
    cached = cache / f"{code_key(config)}.json"
    if cached.exists():
        say(f"fault-free run: cached ({cached})")
        return json.loads(cached.read_text())
    say("fault-free run: running it once for this code and config")
    result = run_sweep(workdir / "fault-free", config, [], say)
    cache.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(result))
    say(f"fault-free run: {result['seconds']:.0f} s, cached as {cached}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="the storm's seed")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/attnlab/chaos")
    parser.add_argument("--race", action="store_true", help="race the seeds instead of pareto-asha")
    parser.add_argument("--race-stops", action="store_true", help="race the seeds, pareto-asha in each round")
    parser.add_argument("--quick", action="store_true", help="4 trials of 2 epochs: the soak's plumbing only")
    args = parser.parse_args(argv)
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="attnlab-chaos-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        print(line, flush=True)

    config = sweep_config(args.race, args.quick, args.race_stops)
    kind = "race with pareto-asha" if args.race_stops else "race" if args.race else "pareto-asha"
    say(f"chaos soak, seed {args.seed}, {kind}, in {workdir}")
    reference = fault_free(config, args.cache, workdir, say)
    faults = schedule(args.seed, reference["events"])
    say("\nschedule:")
    say(f"  {'id':4} {'fault':17} {'trial':58} {'epoch':>5} at")
    for f in faults:
        extra = f" ({f.seconds:g} s)" if f.seconds else (" + truncate" if f.truncate else "")
        extra += f" (rank {f.rank})" if f.rank else ""
        say(f"  {f.id:4} {f.kind:17} {f.trial:58} {f.epoch:>5} {f.at}{extra}")
    say("\nthe storm:")
    chaos = run_sweep(workdir / f"storm-{args.seed}", config, faults, say)
    say(f"\n{'fault':17} {'trial':58} {'recovered in':>12}")
    for f in faults:
        took = "not fired" if f.fired_at is None else (f"{f.recovered_s:.1f} s" if f.recovered_s else "-")
        say(f"{f.kind:17} {f.trial:58} {took:>12}")
    say(
        f"\nfault-free: {reference['seconds']:.0f} s, 1 driver; storm: {chaos['seconds']:.0f} s, "
        f"{chaos['drivers']} drivers"
    )
    for f in faults:
        if f.fired_at is None:  # an earlier fault took the trial past its anchor (the checker still
            # compares everything the trial logged)
            say(f"note: {f.id} {f.kind} never fired: its event did not come in this storm")
    problems = chaos["unexpected"] + check(chaos, reference, faults)
    if problems:
        say(f"\nchecker: {len(problems)} differences from the fault-free run")
        for p in problems:
            say(f"  - {p}")
        return 1
    trials = len(chaos["answer"]["trials"])
    say(
        f"\nchecker: the same answer as the fault-free run ({trials} trials: every history, the "
        "ranking, the front, the findings)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
