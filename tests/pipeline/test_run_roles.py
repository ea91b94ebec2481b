"""A run's life by the role of the process training into it (pipeline/tracking/runs.py), on a real
sqlite store: a standalone run opens, reaps and ends itself; a trial trains into the run its
trial opened and leaves its end to the trial; a DDP rank logs into rank 0's run and opens none."""

import pytest
from mlflow.tracking import MlflowClient

from attnlab.pipeline.tracking import runs, tags
from attnlab.pipeline.tracking.runs import DDP_RUN_ENV, RunRole


@pytest.fixture
def uri(store):
    return store.uri


def _open(role, uri):
    return role.open(uri, "e", name="r", params={"lr": "0.1"}, tags={tags.KIND: tags.KIND_TRAIN})


def test_a_standalone_run_opens_owned_and_ends_itself(uri):
    role = RunRole()
    run_id = _open(role, uri)
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "RUNNING" and run.data.params == {"lr": "0.1"}
    assert run.data.tags[tags.PID] and run.data.tags[tags.HOST]  # reaped if its process dies
    assert role.ends_run and role.keeps_local_checkpoints
    role.end(uri, run_id, "FINISHED")
    assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"


def test_a_trial_trains_into_its_trials_run_and_leaves_the_end_to_it(uri):
    trial_tags = {tags.KIND: tags.KIND_TRIAL, tags.TRIAL: "t-1"}
    trial_run, _ = runs.open_run(uri, "e", name="t", params={"lr": "0.1"}, tags=trial_tags)
    role = RunRole.trial(trial_run)
    assert _open(role, uri) == trial_run  # the trial opened it: training logs into it as it is
    role.end(uri, trial_run, "FAILED")  # the trial decides: Tune may retry it
    run = MlflowClient(uri).get_run(trial_run)
    assert run.info.status == "RUNNING" and run.data.tags[tags.TRIAL] == "t-1"
    assert tags.PID not in run.data.tags  # its workers may be on other machines: never reaped
    assert not role.ends_run and not role.keeps_local_checkpoints
    runs.finish_run(uri, trial_run, "FINISHED")
    assert MlflowClient(uri).get_run(trial_run).info.status == "FINISHED"


def test_a_ddp_rank_logs_into_rank_zeros_run(uri, monkeypatch):
    role = RunRole()
    rank0_run = _open(role, uri)
    with role.shared_with_ranks(rank0_run):
        monkeypatch.setenv("LOCAL_RANK", "1")  # a process Lightning launched, inheriting the environment
        rank = role.here()
        monkeypatch.setenv("LOCAL_RANK", "0")
        assert role.here() is role  # rank 0 keeps its role
    assert DDP_RUN_ENV not in __import__("os").environ
    assert rank.kind == runs.RANK and rank.run_id == rank0_run and not rank.ends_run
    assert _open(rank, uri) == rank0_run
    rank.end(uri, rank0_run, "FAILED")
    assert MlflowClient(uri).get_run(rank0_run).info.status == "RUNNING"
    experiment = MlflowClient(uri).get_experiment_by_name("e")
    assert len(MlflowClient(uri).search_runs([experiment.experiment_id])) == 1
