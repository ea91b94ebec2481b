"""Fault drill: the tracking server (mlflow server with basic-auth on PostgreSQL, on loopback) is
stopped for 60 s mid-sweep and started again. Trials train on through the outage, keeping what they
log on disk; after the sweep every epoch's metrics, every param and every best checkpoint is in
MLflow, each trial has one run, and none failed."""

import os
import time

import pytest
from drill_sweep import drill_sweep, start_driver
from mlflow.tracking import MlflowClient
from services import auth_mlflow_on_postgres, clean_env

pytestmark = pytest.mark.slow

OUTAGE_S = 60


@pytest.fixture
def server(tmp_path):
    with auth_mlflow_on_postgres(tmp_path) as server:
        yield server


def test_a_60_s_tracking_outage_loses_nothing_and_fails_no_trial(tmp_path, server, monkeypatch):
    auth = {"MLFLOW_TRACKING_USERNAME": server.username, "MLFLOW_TRACKING_PASSWORD": server.password}
    for key, value in auth.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "outage.yaml").write_text(drill_sweep("outage", specs='"w/o"', max_epochs=4))
    driver = start_driver(
        ["sweep", "--config", "outage.yaml", "--tracking-uri", server.url], tmp_path, clean_env(**auth)
    )
    client = MlflowClient(server.url)
    try:
        deadline = time.time() + 600
        while True:  # the first trial's first epoch is in: then the server goes away
            assert time.time() < deadline and driver.poll() is None, "no epoch logged in time"
            exp = client.get_experiment_by_name("outage")
            runs = client.search_runs([exp.experiment_id]) if exp else []
            if any("epochs_done" in r.data.metrics for r in runs):
                break
            time.sleep(1)
        down = time.time() * 1000
        server.stop(grace_s=0)  # gone at once, as a crashed server is: nothing after `down` reaches it
        time.sleep(OUTAGE_S)
        up = time.time() * 1000
        server.start()  # same port, same PostgreSQL database
        assert driver.wait(timeout=900) == 0
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, 9)

    runs = client.search_runs([client.get_experiment_by_name("outage").experiment_id])
    trials = [r for r in runs if r.data.tags.get("attnlab.kind") == "trial"]
    assert [r.data.tags["attnlab.trial_key"] for r in trials] == ["segmentation-wo-s0"]
    trained_while_down = 0
    for run in trials:
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "epochs_done")
        assert sorted({int(m.value) for m in history}) == [1, 2, 3, 4], history  # no epoch missing
        assert len(client.get_metric_history(run.info.run_id, "val/mIoU")) >= 4
        trained_while_down += sum(down <= m.timestamp <= up for m in history)
        assert run.data.params["max_epochs"] == "4" and "cost/attention_flops" in run.data.metrics
        assert "checkpoints/best.ckpt" in [
            a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")
        ]
    assert trained_while_down >= 1  # epochs ended while the server was down: training went on
