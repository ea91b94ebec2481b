"""Cluster engines for real, on loopback, as the cluster deployment wires them: a small racing sweep
(two tiny segmentation configurations, two seeds each, three epochs, no early stopping; its
Searcher on the cluster reads the race's finished trials back from the server) is sent with
`attnlab submit --ray-address` to a two-node Ray cluster (token auth), and its trials log
to an `mlflow server` with basic-auth on PostgreSQL, which refuses anonymous writes.

The MLflow credentials reach the trials the way the Kubernetes Secret does: in the environment of
the Ray nodes, never in the submitted job or a file of the sweep.

Fault drill 2, node loss: every trial parks before its second epoch (tests/fault_injection.HoldOnce,
so the kill never races a trial's next checkpoint); once a trial on the worker node is parked with
its first checkpoint, that node's raylet is SIGKILLed (its workers go with it) and the others are
released. The trial moves to the head node, resumes from its last checkpoint and the sweep
finishes: one run per trial, none left RUNNING."""

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from drill_sweep import PROMPT_RECORD, recorded_checkpoints
from fault_injection import HOLD_ENV, HOLD_SPEC, RELEASE_ENV
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from repo import HELPERS, run_attnlab
from services import auth_mlflow_on_postgres, clean_env

pytestmark = pytest.mark.slow
TRIAL_ACTOR = "ImplicitFunc"  # Tune's actor of a function trainable: a one-worker trial trains in it
BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")
CLUSTER_SWEEP = """
name: cluster
max_epochs: 3
grid:
  - task: segmentation
    specs: ["w/o", "0010"]
    preset: tiny
    overrides: {segmentation: {crop_size: 64}, data: {batch_size: 4}, limit_train_batches: 4}
early_stopping: {policy: none}
seeds: {policy: race, min: 2, max: 2}
resources: {workers_per_trial: 1, cpus_per_worker: 1}
max_failures: 2
callbacks: ["fault_injection:HoldOnce"]
"""
assert HOLD_SPEC in CLUSTER_SWEEP
CLUSTER_PROBE = """
import json, ray
from ray.util.state import list_actors
ray.init(address="{address}")
workers = list_actors(address="{api}", filters=[("class_name", "=", "{actor}")], limit=10000,
                      detail=True, raise_on_missing_output=False)
print(json.dumps({{"alive": len([n for n in ray.nodes() if n["Alive"]]),
                  "train_worker_nodes": len({{a.node_id for a in workers}}), "train_workers": len(workers)}}))
"""

# Every half second, the pids of the Train workers alive on the worker node (the one with this raylet port).
WATCH_WORKER_NODE = """
import json, time, ray
from ray.util.state import list_actors
ray.init(address="{address}", log_to_driver=False)
node = next(n["NodeID"] for n in ray.nodes() if n["NodeManagerPort"] == {port})
while True:
    alive = list_actors(address="{api}", filters=[("class_name", "=", "{actor}"), ("state", "=", "ALIVE"),
                                 ("node_id", "=", node)], raise_on_missing_output=False, detail=True)
    print(json.dumps([a.pid for a in alive]), flush=True)
    time.sleep(0.5)
"""

# A client of the cluster in its own process: Ray reads RAY_AUTH_* once per process.
WAIT_FOR_JOB = """
import json, time
from ray.job_submission import JobStatus, JobSubmissionClient
jobs = JobSubmissionClient("{address}")
deadline = time.time() + 900
while jobs.get_job_status("{job}") not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
    if time.time() > deadline:
        raise SystemExit("the sweep did not finish on the cluster in 15 minutes")
    time.sleep(5)
info = jobs.get_job_info("{job}")
logs = jobs.get_job_logs("{job}")
print(json.dumps({{"status": str(info.status.value), "message": info.message, "logs": logs}}))
"""


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    with auth_mlflow_on_postgres(tmp_path_factory.mktemp("pg")) as server:
        yield server


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    """`ray start --head` plus one `ray start --address` worker node, both on 127.0.0.1, both in a
    temp dir of their own; `stop` ends exactly their processes (never `ray stop`, which stops every
    Ray on the machine). `ray start` cannot bind port 0, so a start that loses its ports to another
    process is retried with new ones."""

    def __init__(self, env: dict, agent_port: int | None = None, workers: int = 1):
        self.env, self.temp = env, tempfile.mkdtemp(prefix="ray-cluster-")
        self.head_agent_port, self.workers = agent_port, workers

    def start(self, tries: int = 3) -> "RayCluster":
        for attempt in range(tries):
            self.port, self.dashboard, self.worker_port = _unused_port(), _unused_port(), _unused_port()
            self.agent_ports = self.head_agent_port or _unused_port(), _unused_port()
            try:
                self._start_nodes()
                return self
            except subprocess.CalledProcessError as error:
                self.stop(keep_temp=True)
                if attempt == tries - 1 or b"in use" not in (error.stderr or b"") + (error.stdout or b""):
                    raise
        return self

    @property
    def api(self) -> str:
        """The head's dashboard, named to every State API call: without an address the State API
        looks for the machine's one Ray and fails when another Ray runs there too."""
        return f"http://127.0.0.1:{self.dashboard}"

    def _start_nodes(self) -> None:
        common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--temp-dir", self.temp]
        head = ["--head", "--port", str(self.port), "--dashboard-host", "127.0.0.1"]
        head += ["--dashboard-port", str(self.dashboard), "--disable-usage-stats"]
        worker = ["--address", f"127.0.0.1:{self.port}", "--node-manager-port", str(self.worker_port)]
        # Each node's dashboard agent gets a port of its own: its default (52365) is fixed, and another
        # Ray on this machine (a sweep test in the other xdist worker) holding it leaves the head
        # without the job agent that `attnlab submit` needs.
        nodes = (head, worker)[: 1 + self.workers]
        for args, agent_port in zip(nodes, self.agent_ports[: len(nodes)], strict=True):
            subprocess.run(
                [RAY, "start", *args, *common, "--dashboard-agent-listen-port", str(agent_port)],
                check=True,
                env=self.env,
                capture_output=True,
                timeout=180,
            )

    def probe(self) -> dict:
        out = subprocess.run(
            [
                str(BIN / "python"),
                "-c",
                CLUSTER_PROBE.format(address=f"127.0.0.1:{self.port}", api=self.api, actor=TRIAL_ACTOR),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    def kill_worker_node_under_a_checkpointed_trial(self, sweep: Path, release: Path) -> str:
        """Wait until a trial on the worker node has one checkpoint in `sweep` (it is parked before
        its second epoch), then SIGKILL that node's raylet and release the parked trials (create
        `release`). Returns the trial's key."""
        deadline = time.time() + 600
        watcher = subprocess.Popen(
            [
                str(BIN / "python"),
                "-c",
                WATCH_WORKER_NODE.format(
                    address=f"127.0.0.1:{self.port}", api=self.api, port=self.worker_port, actor=TRIAL_ACTOR
                ),
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=(errors := tempfile.TemporaryFile(mode="w+")),
            text=True,
        )
        try:
            for line in watcher.stdout:
                assert time.time() < deadline, "no trial on the worker node had a checkpoint in 10 minutes"
                for pid in json.loads(line) if line.startswith("[") else []:
                    try:  # a trial's process runs in a folder named after its trial
                        key = Path(os.readlink(f"/proc/{pid}/cwd")).name
                    except OSError:
                        continue
                    if len(recorded_checkpoints(sweep / key)) == 1:
                        os.kill(self._worker_raylet(), signal.SIGKILL)
                        release.write_text("released")
                        return key
            watcher.wait()
            errors.seek(0)
            raise AssertionError(
                "the watcher of the worker node stopped (exit "
                f"{watcher.returncode}) before a trial had a checkpoint there:\n{errors.read()[-3000:]}"
            )
        finally:
            watcher.kill()
            watcher.wait()
            errors.close()

    def _worker_raylet(self) -> int:
        for proc in Path("/proc").iterdir():
            try:
                comm = (proc / "comm").read_text().strip()
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if comm == "raylet" and f"--node_manager_port={self.worker_port}".encode() in cmdline:
                return int(proc.name)
        raise AssertionError(f"no raylet with node manager port {self.worker_port}")

    def _processes(self) -> list[psutil.Process]:
        """This cluster's processes: each names its temp dir or its GCS port on its command line."""
        mark = re.compile(rf"{re.escape(self.temp)}|(\d:|gcs_server_port=){self.port}(?!\d)")
        found = {}
        for proc in psutil.process_iter(["cmdline"]):
            line = " ".join(proc.info["cmdline"] or [])
            if proc.pid != os.getpid() and mark.search(line):
                found[proc.pid] = proc
                with contextlib.suppress(psutil.Error):  # agents rename themselves (ray::DashboardAgent)
                    found.update({child.pid: child for child in proc.children(recursive=True)})
        return list(found.values())

    def stop(self, keep_temp: bool = False) -> None:
        procs = self._processes()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=15)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=15)
        if not keep_temp:
            shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster_sweep(auth_server, tmp_path_factory):
    """Submit the sweep to the cluster, wait for it, and keep what the tests look at."""
    workdir = tmp_path_factory.mktemp("cluster")
    (workdir / "cluster.yaml").write_text(CLUSTER_SWEEP)
    # Ray >= 2.59 uses token auth: every node and client of this cluster shares one token. The nodes
    # have attnlab installed (as the image does) and the MLflow credentials in their environment.
    token = secrets.token_hex(32)
    release = workdir / "release-parked-trials"
    nodes_env = clean_env(
        PYTHONPATH=str(HELPERS),  # tests/helpers/fault_injection.py
        **{HOLD_ENV: "*:1", RELEASE_ENV: str(release), **PROMPT_RECORD},
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
        PATH=f"{BIN}:{clean_env().get('PATH', '')}",
        MLFLOW_TRACKING_USERNAME=auth_server.username,
        MLFLOW_TRACKING_PASSWORD=auth_server.password,
    )
    client_env = clean_env(
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token
    )  # the submitter holds no MLflow secret
    cluster = RayCluster(nodes_env).start()
    try:
        address = cluster.api
        submit = ["submit", "--config", "cluster.yaml", "--ray-address", address]
        submit += ["--storage", str(workdir / "sweeps"), "--tracking-uri", auth_server.url]
        proc = run_attnlab(submit, workdir, 120, env=client_env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        job_id = proc.stdout.split("submitted Ray job ")[1].split()[0]
        cut = cluster.kill_worker_node_under_a_checkpointed_trial(workdir / "sweeps" / "cluster", release)
        killed_at = time.time()
        waited = subprocess.run(
            [str(BIN / "python"), "-c", WAIT_FOR_JOB.format(address=address, job=job_id)],
            env=client_env,
            capture_output=True,
            text=True,
            timeout=960,
        )
        assert waited.returncode == 0, waited.stderr[-3000:]
        job = json.loads(waited.stdout.strip().splitlines()[-1])
        status, logs = job["status"], job["logs"]
        errors = "\n".join([line for line in logs.splitlines() if "rror" in line][-20:])
        assert status == "SUCCEEDED", f"{job['message']}\n{errors}"
        summary = json.JSONDecoder().raw_decode(logs[logs.index('{\n  "trials"') :])[0]
        yield {
            "summary": summary,
            "cluster": cluster.probe(),
            "workdir": workdir,
            "cut": cut,
            "killed_at": killed_at,
        }
    finally:
        cluster.stop()


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


def test_the_sweep_completes_on_a_two_node_cluster_that_loses_a_node(cluster_sweep):
    trials = cluster_sweep["summary"]["trials"]
    assert len(trials) == 4 and all(t["status"] == "finished" and t["epochs"] == 3 for t in trials), trials
    cluster = cluster_sweep["cluster"]
    assert cluster["alive"] == 1  # the worker node is gone
    assert cluster["train_worker_nodes"] == 2, cluster  # trials were spread over both nodes
    assert (cluster_sweep["workdir"] / "sweeps" / "cluster").is_dir()  # the --storage the cluster was given


def test_the_postgres_backed_server_records_the_sweep(cluster_sweep, auth_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", auth_server.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", auth_server.password)
    client = MlflowClient(auth_server.url)
    runs = client.search_runs([client.get_experiment_by_name("cluster").experiment_id])
    parents = [r for r in runs if r.data.tags.get("attnlab.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("attnlab.kind") == "trial"]
    assert len(parents) == 1 and len(children) == 4 and len(runs) == 5  # none duplicated
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    for child in children:
        assert child.info.status == "FINISHED"  # none left RUNNING
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val/mIoU")]
        assert len(set(steps)) == 3 and steps.count(min(steps)) == 1, steps  # never started over
        if child.data.tags["attnlab.trial_key"] == cluster_sweep["cut"]:  # the lost node's trial
            assert child.data.tags["attnlab.resumed"].startswith("resumed after epoch 1 ("), child.data.tags
            took = child.info.end_time / 1000 - cluster_sweep["killed_at"]
            print(
                f"node loss: {cluster_sweep['cut']} {child.data.tags['attnlab.resumed']}; "
                f"finished {took:.0f} s after the kill"
            )
        assert "val/mIoU" in child.data.metrics and "cost/attention_flops" in child.data.metrics
        # Each trial's best epoch went through the server's proxy to --artifacts-destination.
        names = {a.path for a in client.list_artifacts(child.info.run_id, "checkpoints")}
        assert names == {"checkpoints/best.ckpt"}
    assert not list(cluster_sweep["workdir"].rglob("mlflow.db"))  # nothing went to a local default store


def test_a_head_without_its_job_agent_is_named_and_nothing_is_submitted(tmp_path):
    """Another process holds the head's agent port, so the head has no job agent: `attnlab submit`
    waits its while, then says so and how to start the head instead of Ray's bare HTTP 500."""
    (tmp_path / "one.yaml").write_text(CLUSTER_SWEEP.replace('"w/o", "0010"', '"w/o"'))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        cluster = RayCluster(clean_env(RAY_AUTH_MODE="disabled"), held.getsockname()[1], workers=0).start()
        try:
            address = cluster.api
            proc = subprocess.run(
                [str(BIN / "attnlab"), "submit", "--config", "one.yaml", "--ray-address", address],
                cwd=tmp_path,
                env=clean_env(RAY_AUTH_MODE="disabled"),
                capture_output=True,
                text=True,
                timeout=180,
            )
        finally:
            cluster.stop()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"the Ray head at {address} has no job agent" in proc.stderr
    assert "--dashboard-agent-listen-port" in proc.stderr and "Traceback" not in proc.stderr
