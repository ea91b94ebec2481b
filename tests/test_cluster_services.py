"""Cluster engines for real, on loopback: an MLflow server with basic-auth on PostgreSQL records a
sweep (and refuses anonymous writes); a two-node Ray cluster runs `attnlab submit --ray-address`."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from services import AuthMlflowServer, Postgres, clean_env, free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
SMALL_SWEEP = """
name: {name}
max_epochs: 2
grid:
  - task: segmentation
    specs: ["w/o", "0010"]
    preset: tiny
    overrides: {{segmentation: {{crop_size: 64}}, data: {{batch_size: 4}}, limit_train_batches: 4}}
early_stopping: {{policy: none}}
"""


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("pg")
    pg = Postgres().start()
    server = AuthMlflowServer(root, pg.uri)
    try:
        yield server.start()
    finally:
        server.stop()
        pg.stop()


def test_anonymous_writes_are_refused(auth_server, monkeypatch):
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(MlflowException) as err:
        MlflowClient(auth_server.url).create_experiment("anonymous")
    assert "401" in str(err.value) or "nauthorized" in str(err.value)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", auth_server.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-password")
    with pytest.raises(MlflowException):
        MlflowClient(auth_server.url).create_experiment("wrong")


def test_a_sweep_records_its_runs_on_the_postgres_backed_server(auth_server, tmp_path):
    (tmp_path / "s.yaml").write_text(SMALL_SWEEP.format(name="pg-sweep"))
    env = clean_env(MLFLOW_TRACKING_USERNAME=auth_server.username, MLFLOW_TRACKING_PASSWORD=auth_server.password)
    proc = subprocess.run([str(BIN / "attnlab"), "sweep", "--config", "s.yaml", "--tracking-uri", auth_server.url],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    os.environ.update(MLFLOW_TRACKING_USERNAME=auth_server.username, MLFLOW_TRACKING_PASSWORD=auth_server.password)
    try:
        client = MlflowClient(auth_server.url)
        runs = client.search_runs([client.get_experiment_by_name("pg-sweep").experiment_id])
        kinds = sorted(r.data.tags.get("attnlab.kind") for r in runs)
        assert kinds == ["sweep", "trial", "trial"]
        assert all(r.info.status == "FINISHED" for r in runs)
        assert all("val/mIoU" in r.data.metrics for r in runs if r.data.tags.get("attnlab.kind") == "trial")
    finally:
        os.environ.pop("MLFLOW_TRACKING_USERNAME")
        os.environ.pop("MLFLOW_TRACKING_PASSWORD")
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the local default store


def test_submit_to_a_two_node_ray_cluster(tmp_path, monkeypatch):
    import secrets

    ray = str(BIN / "ray")
    port, dash = free_port(), free_port()
    # Ray >= 2.59 uses token auth; every node and client of this cluster shares one token.
    env = clean_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"  # the nodes have attnlab installed, as the image does
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", env["RAY_AUTH_TOKEN"])
    subprocess.run([ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                    "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--num-cpus", "1",
                    "--disable-usage-stats"], check=True, env=env, capture_output=True, timeout=180)
    try:
        subprocess.run([ray, "start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1",
                        "--num-cpus", "1"], check=True, env=env, capture_output=True, timeout=180)
        (tmp_path / "s.yaml").write_text(SMALL_SWEEP.format(name="on-cluster"))
        tracking = f"sqlite:///{tmp_path / 'cluster.db'}"
        proc = subprocess.run([str(BIN / "attnlab"), "submit", "--config", str(tmp_path / "s.yaml"),
                               "--ray-address", f"http://127.0.0.1:{dash}", "--storage", str(tmp_path / "sweeps"),
                               "--tracking-uri", tracking],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        job_id = proc.stdout.split("submitted Ray job ")[1].split()[0]
        from ray.job_submission import JobStatus, JobSubmissionClient
        client = JobSubmissionClient(f"http://127.0.0.1:{dash}")
        deadline = time.time() + 900
        while client.get_job_status(job_id) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
            assert time.time() < deadline, "the sweep did not finish on the cluster"
            time.sleep(5)
        logs = client.get_job_logs(job_id)
        info = client.get_job_info(job_id)
        errors = [line for line in logs.splitlines() if "rror" in line and "sync_dist" not in line]
        assert client.get_job_status(job_id) == JobStatus.SUCCEEDED, f"{info.message}\n" + "\n".join(errors[-20:])
        summary = json.JSONDecoder().raw_decode(logs[logs.index('{\n  "trials"'):])[0]
        assert [t["status"] for t in summary["trials"]] == ["finished", "finished"]
        nodes = json.loads(subprocess.run([str(BIN / "python"), "-c",
                                           f"import ray, json; ray.init(address='127.0.0.1:{port}'); "
                                           "print(json.dumps(len([n for n in ray.nodes() if n['Alive']])))"],
                                          env=env, capture_output=True, text=True, timeout=120).stdout.strip() or "0")
        assert nodes == 2
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
