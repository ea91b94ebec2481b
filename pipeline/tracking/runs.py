"""A run's whole life in MLflow, in one place: opened or reopened, finished, reaped when the
process that owned it is gone, and closed when early stopping ends a trial.

A training process meets a run in one of three roles (`RunRole`): a standalone `attnlab train`
opens and ends its own run; a sweep's trial trains into the run the trial opened, and the trial
ends it (`open_trial`, then `finish_run`, or `close_stopped` when early stopping ends it); a DDP rank that
Lightning started for `--devices N` logs into rank 0's run and never opens or ends one.
Lightning's logger only logs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Iterator, Mapping

from mlflow.entities import Param, RunTag
from mlflow.tracking import MlflowClient

from attnlab.pipeline.tracking.owners import process_gone, this_host
from attnlab.pipeline.tracking.store import ensure_experiment, find_run, set_tags
from attnlab.pipeline.tracking.tags import (
    HOST,
    KIND,
    KIND_SWEEP,
    KIND_TRAIN,
    PARENT,
    PID,
    STOPPED_EARLY,
    SWEEP,
    TRIAL,
)

DDP_RUN_ENV = "ATTNLAB_DDP_RUN_ID"  # rank 0's run, for the processes Lightning launches for --devices N
STANDALONE, TRIAL_ROLE, RANK = "standalone", "trial", "rank"


@dataclass(frozen=True)
class RunRole:
    """Whose run a training process logs to, and so what it may do with it."""

    kind: str = STANDALONE
    run_id: str | None = None  # a trial's run (opened by the trial); a rank's: rank 0's

    @classmethod
    def trial(cls, run_id: str) -> RunRole:
        """Training inside a sweep's trial, into the run the trial opened (`open_trial`)."""
        return cls(TRIAL_ROLE, run_id)

    @classmethod
    def resumed(cls, run_id: str) -> RunRole:
        """A standalone run that goes on where it stopped (`attnlab train --resume`): reopened here,
        ended here."""
        return cls(STANDALONE, run_id)

    def here(self) -> RunRole:
        """The role as this process holds it: a process Lightning launched for `--devices N`
        (LOCAL_RANK >= 1, with rank 0's run in its environment) is a rank of that run."""
        shared = os.environ.get(DDP_RUN_ENV) if os.environ.get("LOCAL_RANK", "0") != "0" else None
        return RunRole(RANK, shared) if shared else self

    @property
    def ends_run(self) -> bool:
        """Only a standalone run ends itself; a trial's run is ended by its trial, a rank's by rank 0."""
        return self.kind == STANDALONE

    @property
    def continues_run(self) -> bool:
        """Whether the run may hold steps already (a trial's retry, a rank's, a resumed run's)."""
        return self.kind != STANDALONE or self.run_id is not None

    @property
    def keeps_local_checkpoints(self) -> bool:
        """A trial's checkpoints are Ray's (and its best weights go to MLflow); the others keep
        best.ckpt and last.ckpt in the run's folder, then in MLflow."""
        return self.kind != TRIAL_ROLE

    def open(
        self, uri: str, experiment: str, *, name: str, params: Mapping[str, str], tags: Mapping[str, str]
    ) -> str:
        """The run this process trains into, open (RUNNING): a trial's and a rank's are open already
        (the trial opened its run with these params and tags; a rank logs into rank 0's); a
        standalone run is created here, or reopened when it resumes, after reaping the runs this
        host's dead processes left RUNNING (a trial never reaps: its workers may live on other
        machines)."""
        if self.kind != STANDALONE:
            return self.run_id
        reap_stale(uri, experiment)
        run_id, _ = open_run(
            uri, experiment, name=name, params=params, tags={**tags, **owner_tags()}, run_id=self.run_id
        )
        return run_id

    def end(self, uri: str, run_id: str, status: str) -> None:
        """End the run with `status` where this role ends it (see `ends_run`)."""
        if self.ends_run:
            finish_run(uri, run_id, status)

    @contextlib.contextmanager
    def shared_with_ranks(self, run_id: str) -> Iterator[None]:
        """Meanwhile, the processes Lightning launches for `--devices N` find this run (they
        inherit the environment); a rank leaves it to rank 0."""
        if self.kind == RANK:
            yield
            return
        os.environ[DDP_RUN_ENV] = run_id
        try:
            yield
        finally:
            os.environ.pop(DDP_RUN_ENV, None)


def stopped_early(run) -> bool:
    return run.data.tags.get(STOPPED_EARLY) == "true"


def open_trial(
    uri: str,
    experiment: str,
    *,
    sweep: str,
    key: str,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    parent_run_id: str,
):
    """(run id, the run when it ended) of a trial's child run: found by its key, reopened, or
    created on first use. Ended: finished, or stopped by early stopping; a resumed sweep never
    retrains it, so it is returned as it is."""
    found = find_run(uri, experiment, {TRIAL: key, SWEEP: sweep})
    if found is not None and (found.info.status == "FINISHED" or stopped_early(found)):
        return found.info.run_id, found
    run_id, _ = open_run(
        uri,
        experiment,
        name=key,
        params=params,
        tags=tags,
        run_id=found.info.run_id if found else None,
        parent_run_id=parent_run_id,
    )
    return run_id, None


def close_stopped(uri: str, run_id: str) -> None:
    """A trial early stopping ended: KILLED and tagged so, and no driver trains it again."""
    finish_run(uri, run_id, "KILLED", {STOPPED_EARLY: "true"})


def open_sweep(
    uri: str, experiment: str, *, sweep: str, params: Mapping[str, str], tags: Mapping[str, str]
) -> str:
    """The sweep's parent run: the one of this sweep's name if a driver opened it before."""
    run_id, _ = open_run(
        uri,
        experiment,
        name=sweep,
        params=params,
        tags={KIND: KIND_SWEEP, SWEEP: sweep, **tags},
        match={KIND: KIND_SWEEP, SWEEP: sweep},
    )
    return run_id


def _log(
    client: MlflowClient,
    run_id: str,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    logged: Mapping[str, str] | None = None,
) -> None:
    """Tags (always) and params (only those the run lacks: MLflow params never change) in one batch."""
    fresh = {k: v for k, v in params.items() if k not in (logged or {})}
    client.log_batch(
        run_id,
        params=[Param(k, str(v)[:6000]) for k, v in fresh.items()],
        tags=[RunTag(k, str(v)) for k, v in tags.items()],
    )


def open_run(
    uri: str,
    experiment: str,
    *,
    name: str | None,
    params: Mapping[str, str],
    tags: Mapping[str, str],
    run_id: str | None = None,
    match: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
) -> tuple[str, str | None]:
    """Open the run: `run_id` if given, else the one whose tags equal `match`, else a new one.

    A reopened run is set RUNNING and gets `params` it lacks and every tag in `tags`.
    Returns (run id, the status it had before, or None when it was created here).
    """
    client = MlflowClient(uri)
    found = client.get_run(run_id) if run_id else (find_run(uri, experiment, match) if match else None)
    if found is not None:
        _log(client, found.info.run_id, params, tags, found.data.params)
        client.update_run(found.info.run_id, status="RUNNING")
        return found.info.run_id, found.info.status
    all_tags = {**tags, **({PARENT: parent_run_id} if parent_run_id else {})}
    run = client.create_run(ensure_experiment(client, experiment, uri), run_name=name, tags=all_tags)
    _log(client, run.info.run_id, params, {})
    return run.info.run_id, None


def finish_run(
    uri: str, run_id: str, status: str = "FINISHED", tags: Mapping[str, str] | None = None
) -> None:
    """End the run with `status` (FINISHED, FAILED or KILLED), setting `tags` first."""
    if tags:
        set_tags(uri, run_id, tags)
    MlflowClient(uri).set_terminated(run_id, status=status)


def owner_tags() -> dict[str, str]:
    """Who owns a standalone run: if that process is gone while the run says RUNNING, it died."""
    return {HOST: this_host(), PID: str(os.getpid())}


def stale_runs(uri: str, experiment: str) -> list:
    """The standalone runs of `experiment` left RUNNING by a process of this host that is gone (a
    SIGKILL, a power cut); reads only. Sweep trials are left to the sweep: their workers may live
    on other machines."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    where = (
        f"attributes.status = 'RUNNING' and tags.`{KIND}` = '{KIND_TRAIN}' "
        f"and tags.`{HOST}` = '{this_host()}'"
    )
    found = client.search_runs([exp.experiment_id], filter_string=where, max_results=1000)
    return [r for r in found if r.data.tags.get(PID) and process_gone(r.data.tags[PID])]


def reap_stale(uri: str, experiment: str) -> list[str]:
    """Mark FAILED the runs `stale_runs` finds (a command about to log into the experiment does);
    print and return their ids."""
    reaped = []
    for run in stale_runs(uri, experiment):
        MlflowClient(uri).set_terminated(run.info.run_id, status="FAILED")
        print(
            f"attnlab: run {run.info.run_name} ({run.info.run_id}) was left RUNNING by process "
            f"{run.data.tags[PID]}, which is gone; marked it FAILED",
            file=sys.stderr,
        )
        reaped.append(run.info.run_id)
    return reaped
