"""Run (or resume) a sweep: Tuner over the grid, ASHA on the task metric by epoch, MLflow parent run.

Rerunning the same sweep (same name and storage) resumes it: finished trials stay finished,
interrupted ones continue from their checkpoints.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from attnlab.pipeline.config.errors import StorageFull
from attnlab.pipeline.costs.axes import COSTS, UNITS
from attnlab.pipeline.tracking import runs, tags
from attnlab.pipeline.tracking.store import (
    code_version,
    ensure_experiment,
    find_run,
    find_runs,
    flatten,
    resolve_tracking_uri,
    set_tags,
)

from .ended_trials import EndedTrials, ended, when_a_trial_ends
from .live_view import LiveView, say
from .local_services import init_ray, tracking_server
from .pareto_asha import ParetoASHA, decisions_text
from .schedulers import DECISIONS, PerTaskScheduler
from .storage import SweepStore, scratch_dir, storage_full
from .sweep_config import SweepConfig, check_resources, storage_root
from .sweep_lock import SweepLock
from .trial_entry import trial_function
from .trial_storage import drop_checkpoints

STATE_FILE = "attnlab_sweep.json"


def _scheduler(sweep: SweepConfig, store: SweepStore | None = None):
    """ASHA per task (its rungs saved in the sweep's `store`, for resume), or FIFO."""
    es = sweep.early_stopping
    if es.policy == "none":
        return FIFOScheduler()
    if es.policy == "pareto-asha":
        return PerTaskScheduler(
            partial(
                ParetoASHA,
                COSTS[es.cost],
                sweep.max_epochs or 1000,
                es.grace_period,
                es.reduction_factor,
                es.front_fraction,
                es.tolerance,
            ),
            store,
        )
    # max_t one past the budget: ASHA never cuts a trial at its last epoch, so a trial that
    # survives every rung ends on its own (final checkpoint and MLflow artifacts included).
    max_t = (sweep.max_epochs or 1000) + 1
    # One ASHA per task: each task's `score` is its own metric, comparable only within the task.
    return PerTaskScheduler(
        partial(
            ASHAScheduler,
            time_attr="epoch",
            max_t=max_t,
            grace_period=min(es.grace_period, max_t - 1),
            reduction_factor=es.reduction_factor,
        ),
        store,
    )


def _concurrency(sweep: SweepConfig) -> int:
    if sweep.max_concurrent_trials:
        return sweep.max_concurrent_trials
    res, r = ray.cluster_resources(), sweep.resources
    fits = [int(res.get("CPU", 0) // (r.workers_per_trial * r.cpus_per_worker))]
    if r.gpus_per_worker:
        fits.append(int(res.get("GPU", 0) // (r.workers_per_trial * r.gpus_per_worker)))
    return max(1, min(fits))


def _trainable(sweep: SweepConfig, uri: str, storage: str, parent_id: str, recover: bool = True):
    fn = tune.with_parameters(
        trial_function,
        sweep=sweep.model_dump(mode="json"),
        uri=uri,
        storage=storage,
        scratch=scratch_dir(storage, sweep.name),
        parent_id=parent_id,
        recover=recover,
    )
    r = sweep.resources
    if r.workers_per_trial == 1:  # the trial trains in its own (reused) process: it holds the resources
        return tune.with_resources(fn, {"cpu": r.cpus_per_worker, "gpu": r.gpus_per_worker})
    # The trial function only drives a TorchTrainer; its workers hold the real resources.
    # A zero-CPU request needs some resource to be a valid bundle: a little memory.
    return tune.with_resources(fn, {"cpu": 0, "memory": 64 * 2**20})


def _trial_name(trial) -> str:
    return trial.config["trial"]["trial_key"]


def sweep_store(sweep_name: str, storage: str | None) -> SweepStore:
    return SweepStore(storage_root(storage), sweep_name)


def run_sweep(
    sweep: SweepConfig,
    storage: str | None = None,
    tracking_uri: str | None = None,
    ray_address: str | None = None,
    restart_errored: bool = False,
    origin: str | None = None,
    source: str | None = None,
) -> dict:
    """Run the sweep, or resume it if its folder already holds a Tune experiment.

    `origin` (e.g. "preset smoke", "config my.yaml") goes into the parent run's description; a
    resume passes None and keeps the description the sweep started with. `source` (the CLI flags
    that chose the grid) is kept as a tag, for the command that adds seeds to it.
    """
    store = preflight(sweep, storage, ray_address)
    check_new_trials(sweep, resolve_tracking_uri(tracking_uri))
    with SweepLock(store) as lock:
        if lock.recovered:
            held = lock.recovered
            say(
                f"attnlab: took over the lock of a driver that is gone (pid {held.get('pid')} on "
                f"{held.get('host')}, since {held.get('started')})"
            )
        return _run_locked(sweep, store, tracking_uri, ray_address, restart_errored, origin, source)


def check_new_trials(sweep: SweepConfig, uri: str) -> None:
    """A sweep that shares its MLflow experiment with others trains only trials they have not: a
    task/spec/seed another sweep there finished (or early stopping ended) is refused, naming it."""
    if sweep.experiment_name == sweep.name:
        return
    done = {
        (r.data.tags.get(tags.TASK), r.data.tags.get(tags.ATTENTION), r.data.tags.get(tags.SEED)): r
        for r in find_runs(uri, sweep.experiment_name, {tags.KIND: tags.KIND_TRIAL})
        if r.data.tags.get(tags.SWEEP) != sweep.name
        and (r.info.status == "FINISHED" or runs.stopped_early(r))
    }
    again = [t for t in sweep.trials() if (t.task, t.spec, str(t.seed)) in done]
    if again:
        from attnlab.pipeline.config.errors import ConfigError

        seeds = sorted({t.seed for t in again})
        other = sorted({done[(t.task, t.spec, str(t.seed))].data.tags.get(tags.SWEEP) for t in again})
        raise ConfigError(
            f"{len(again)} trial(s) of sweep {sweep.name!r} already ran in experiment "
            f"{sweep.experiment_name!r} (sweep {', '.join(other)}), e.g. {again[0].trial_key}; "
            f"seed(s) {', '.join(map(str, seeds))} are taken: pass only new ones with --seeds"
        )


def _run_locked(sweep, store, tracking_uri, ray_address, restart_errored, origin, source) -> dict:
    """The sweep itself, under its driver lock."""
    root = store.root
    uri = resolve_tracking_uri(tracking_uri)
    config = sweep.model_dump(mode="json")
    from mlflow.tracking import MlflowClient

    embedded = not (ray.is_initialized() or ray_address or os.environ.get("RAY_ADDRESS"))
    # The local MLflow server (it creates a new store's tables) and Ray start side by side.
    with tracking_server(uri, meanwhile=lambda: init_ray(ray_address)) as server:
        served = server.url
        # Created against the store itself, so its artifact location is a path every process here
        # can read; the server, just up, has no client yet.
        ensure_experiment(MlflowClient(uri), sweep.experiment_name, uri)
        parent_id = runs.open_sweep(
            served,
            sweep.experiment_name,
            sweep=sweep.name,
            params=flatten(config),
            tags={
                tags.CODE_VERSION: code_version(),
                **({tags.DESCRIPTION: describe(sweep, origin)} if origin else {}),
                **({tags.SOURCE: source} if source else {}),
            },
        )
        store.write_text(
            STATE_FILE,
            json.dumps({"sweep": config, "tracking_uri": uri, "parent_run_id": parent_id}, indent=2),
        )
        trainable = _trainable(sweep, served, root, parent_id, recover=not restart_errored)
        torn = store.set_aside_torn_state()
        if torn:
            say(
                "attnlab: Tune's experiment state was cut short (a full disk?); its files are renamed "
                f"*.torn ({', '.join(torn)}) and Tune starts afresh: finished trials are kept, the "
                "others resume from their checkpoints"
            )
        # Given to a restore too: where Tune cannot read its own state back it logs that and starts
        # afresh from the param_space it is given (none: trials without a config).
        param_space = {"trial": tune.grid_search([t.param() for t in sweep.trials()])}
        if tune.Tuner.can_restore(*store.tune_path()):
            path, fs = store.tune_path()
            tuner = tune.Tuner.restore(
                path,
                trainable,
                param_space=param_space,
                resume_errored=not restart_errored,
                restart_errored=restart_errored,
                storage_filesystem=fs,
            )
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    metric="score",
                    mode="max",
                    scheduler=_scheduler(sweep, store),
                    max_concurrent_trials=_concurrency(sweep),
                    trial_name_creator=_trial_name,
                    trial_dirname_creator=_trial_name,
                    # A one-worker trial's process, its imports warm, trains the next trial too.
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name=sweep.name,
                    storage_path=root,
                    failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                    # Pickled with the experiment, so a resumed sweep keeps its live view.
                    callbacks=[LiveView(len(sweep.trials()), sweep.max_epochs), EndedTrials()],
                ),
            )
        when_a_trial_ends(lambda key: close_stopped(served, sweep, key, store))
        try:
            results = tuner.fit()
        except Exception as error:  # e.g. Tune reading back its own files, cut short as the disk filled
            full = _full(sweep, root)
            if full is None:
                raise
            raise full from error
        summary = _reconcile(results, served, sweep, parent_id, root, store)
        # The report needs no server with a sqlite store: it is written while the server and Ray stop.
        report_uri = uri if uri.startswith("sqlite:") else served
        reporting = ThreadPoolExecutor(1).submit(
            publish_report, report_uri, sweep.experiment_name, parent_id, root
        )
        server.begin_stop()  # the server and Ray stop side by side
        if embedded:
            ray.shutdown()  # the Ray this sweep started: nothing runs on it any more
    summary["report"] = reporting.result()
    return summary


def _full(sweep: SweepConfig, root: str) -> StorageFull | None:
    """The error a full storage gives, or None while there is room."""
    low = storage_full(root)
    if low is None:
        return None
    return StorageFull(
        f"the sweep's storage is full ({low}): a checkpoint or Tune's state could not be written. "
        "Every checkpoint written before it is intact; free space, then "
        f"`attnlab resume {sweep.name}` continues the sweep"
    )


def preflight(sweep: SweepConfig, storage: str | None, ray_address: str | None) -> SweepStore:
    """The checks that need no Ray and write nothing: the trial fits this machine, and a sweep
    already stored under this name has this config. Returns the sweep's store."""
    check_resources(sweep, ray_address)
    from attnlab.pipeline.training.user_callbacks import check as check_callbacks

    check_callbacks(sweep.callbacks)
    store = sweep_store(sweep.name, storage)
    saved = store.read_text(STATE_FILE)
    # Compared after validation, so a field a newer attnlab added (with its default) is no change.
    if saved is not None and _normalised(json.loads(saved)["sweep"]) != sweep.model_dump(mode="json"):
        from attnlab.pipeline.config.errors import ConfigError

        raise ConfigError(
            f"sweep {sweep.name!r} already exists at {store.location} with another config; "
            "resume it unchanged (`attnlab resume`) or pick a new --name"
        )
    SweepLock(store).check()
    full = _full(sweep, store.root)
    if full is not None:
        raise full
    return store


def _normalised(config: dict) -> dict | None:
    try:
        return SweepConfig.model_validate(config).model_dump(mode="json")
    except ValueError:
        return None


def describe(sweep: SweepConfig, origin: str) -> str:
    """The parent run's description: where the sweep came from and what its grid holds."""
    grids = "\n".join(
        f"- {g.task}: {len(g.specs)} specs x {len(g.seeds)} seeds, preset {g.preset}, data {g.data}"
        for g in sweep.grid
    )
    stopping = sweep.early_stopping.policy
    return (
        f"attnlab sweep **{sweep.name}** from {origin}: {len(sweep.trials())} trials, "
        f"{sweep.max_epochs or 'preset'} epochs each, early stopping: {stopping}.\n\n{grids}"
    )


def publish_report(uri: str, name: str, parent_id: str, storage: str) -> str | None:
    """Write the sweep's HTML report, attach it to the parent run and link it from the run's
    description. A report that cannot be made never fails the sweep; the reason is logged."""
    import logging

    from mlflow.tracking import MlflowClient

    from attnlab.pipeline.analysis.ranking import fetch_runs
    from attnlab.pipeline.analysis.report import write_report

    try:
        out = scratch_dir(storage, name, "report")
        index = write_report(fetch_runs(uri, name), name, out, uri=uri)
        client = MlflowClient(uri)
        client.log_artifacts(parent_id, out, "report")
        run = client.get_run(parent_id)
        text = run.data.tags.get(tags.DESCRIPTION, "").split(REPORT_LINE)[0].rstrip()
        link = f"#/experiments/{run.info.experiment_id}/runs/{parent_id}/artifacts/report/index.html"
        client.set_tag(parent_id, tags.DESCRIPTION, f"{text}\n\n{REPORT_LINE} [report/index.html]({link})")
        return str(index)
    except Exception as exc:  # the trials are done; a report is a convenience
        logging.getLogger(__name__).warning("no report for sweep %s: %s", name, exc)
        return None


REPORT_LINE = "Report (HTML, also `attnlab report`):"


def _error_log(trial_path: str | None) -> str:
    """Where Tune wrote the trial's traceback (error.txt in the trial's folder)."""
    if not trial_path:
        return "(no trial folder)"
    return f"{trial_path.rstrip('/')}/error.txt"


def errored(summary: dict) -> list[dict]:
    """The trials that neither finished nor were stopped by early stopping."""
    return [t for t in summary["trials"] if t["status"] == "error"]


def _status(result, run, completed: set[str], key: str) -> str:
    """finished | stopped (by early stopping) | error | interrupted (the driver stopped mid-way)."""
    if result.error:
        return "error"
    if run is not None and run.info.status == "FINISHED":
        return "finished"
    if key in completed or (run is not None and runs.stopped_early(run)):
        return "stopped"
    return "interrupted"


def close_stopped(uri: str, sweep: SweepConfig, key: str, store: SweepStore | None = None) -> None:
    """A trial Tune ended whose run is still RUNNING was stopped by early stopping: its run is closed
    at once (KILLED, tagged), so no later driver trains it again, even one that lost Tune's record
    of it (Tune state set aside after a full disk). The sweep's end closes the rest. With the
    sweep's `store`, what cost-aware early stopping decided for the trial is tagged and said."""
    run = find_run(uri, sweep.experiment_name, {tags.TRIAL: key, tags.SWEEP: sweep.name})
    if run is not None and run.info.status == "RUNNING":
        runs.close_stopped(uri, run.info.run_id)
    said = decisions_of(saved_decisions(store), sweep, key) if run is not None else None
    if said:
        text, by_front = said
        set_tags(
            uri,
            run.info.run_id,
            {tags.EARLY_STOPPING: text, **({tags.KEPT_BY_FRONT: "true"} if by_front else {})},
        )
        say(f"  {key}: {text}")


def saved_decisions(store: SweepStore | None) -> dict[str, list[dict]]:
    """Trial key -> the decisions a cost-aware scheduler saved beside the sweep (none: {})."""
    saved = store.read_text(DECISIONS) if store is not None else None
    return json.loads(saved) if saved else {}


def decisions_of(decisions: dict[str, list[dict]], sweep: SweepConfig, key: str) -> tuple[str, bool] | None:
    """(what early stopping decided for the trial, in one line; whether the front rule kept it)."""
    mine = decisions.get(key)
    if not mine:
        return None
    return decisions_text(mine, UNITS[sweep.early_stopping.cost]), any(d["rule"] == "front" for d in mine)


def _reconcile(results, uri: str, sweep: SweepConfig, parent_id: str, storage: str, store=None) -> dict:
    """Close what Tune stopped: early-stopped trials get a tag and KILLED, and lose their Ray
    checkpoints, which nothing resumes; errors FAILED and interrupted trials KILLED, both keeping
    their checkpoints for `attnlab resume`."""
    trial_runs = {
        r.data.tags.get(tags.TRIAL): r
        for r in find_runs(uri, sweep.experiment_name, {tags.KIND: tags.KIND_TRIAL, tags.SWEEP: sweep.name})
    }
    summary = {"trials": [], "parent_run_id": parent_id}
    done = ended()
    decisions = saved_decisions(store)
    for result in results:
        key = result.config["trial"]["trial_key"]
        epochs = int(result.metrics.get("epoch", 0)) if result.metrics else 0
        run = trial_runs.get(key)
        status = _status(result, run, done, key)
        if run is not None and run.info.status == "RUNNING":
            if status == "error":
                runs.finish_run(uri, run.info.run_id, "FAILED")
            elif status == "stopped":
                runs.close_stopped(uri, run.info.run_id)
            else:
                runs.finish_run(uri, run.info.run_id, "KILLED")
        if status in ("finished", "stopped"):
            drop_checkpoints(storage, sweep.name, key)
        entry = {
            "trial": key,
            "status": status,
            "epochs": epochs,
            "score": result.metrics.get("score") if result.metrics else None,
        }
        said = decisions_of(decisions, sweep, key)
        if said:  # which rule kept the trial at each rung, or why it was stopped
            entry["early_stopping"] = said[0]
        if result.error:
            text = str(result.error).strip()
            entry["error"] = text.splitlines()[-1][:300] if text else type(result.error).__name__
            if "No space left on device" in text:
                entry["error"] = f"disk full, free space before resuming: {entry['error']}"
            entry["log"] = _error_log(result.path)
        summary["trials"].append(entry)
    seen = {t["trial"] for t in summary["trials"]}
    for trial in sweep.trials():  # never started: an interrupted driver had not reached them
        if trial.trial_key not in seen:
            summary["trials"].append(
                {"trial": trial.trial_key, "status": "interrupted", "epochs": 0, "score": None}
            )
    statuses = {t["status"] for t in summary["trials"]}
    if statuses <= {"finished", "stopped"}:
        runs.finish_run(uri, parent_id, "FINISHED")
    elif "interrupted" in statuses:
        runs.finish_run(uri, parent_id, "KILLED")
    return summary


def interrupted(summary: dict) -> list[dict]:
    """The trials a stopped driver left mid-way (or never started): `attnlab resume` runs them."""
    return [t for t in summary["trials"] if t["status"] == "interrupted"]
