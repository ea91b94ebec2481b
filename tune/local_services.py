"""Embedded services for a laptop sweep: a local Ray and, for a sqlite store, a loopback MLflow server.

Parallel trials writing straight into one sqlite file hit "database is locked"; one `mlflow
server` process in front of the file is the single writer. It binds to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

LISTENING = re.compile(rb"Uvicorn running on (http://[\w.\[\]:]+:(\d+))")


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> bool:
    """Poll `url`/health until it answers 200 (True), or `proc` exits or `timeout` passes (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def listening_url(log: Path, offset: int, proc: subprocess.Popen, timeout: float = 120) -> str | None:
    """The address an `mlflow server --port 0` bound, read back from what it wrote to `log` after
    `offset` (uvicorn names the real port): nothing can take the port between choosing and binding."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        with open(log, "rb") as f:
            f.seek(offset)
            found = LISTENING.search(f.read())
        if found:
            return found.group(1).decode()
        time.sleep(0.2)
    return None


def start_mlflow_server(
    args: list[str],
    log: Path,
    port: int = 0,
    env: dict | None = None,
    cwd: Path | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> tuple[subprocess.Popen, str]:
    """`mlflow server ARGS` on 127.0.0.1 (`port` 0: one the kernel picks), healthy; returns
    (process, url). Its own process group (the server starts uvicorn and job-runner workers), so
    `stop_group` stops it as a whole; on Linux it is also told to stop when this process dies.
    `meanwhile` runs while the server starts (a sweep starts Ray then: the two take as long as one)."""
    offset = log.stat().st_size if log.exists() else 0
    cmd = [sys.executable, "-m", "mlflow", "server", *args, "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
        )
    try:
        if meanwhile is not None:
            meanwhile()
    except BaseException:
        stop_group(proc)
        raise
    url = listening_url(log, offset, proc)
    if url is None or not wait_healthy(url, proc):
        stop_group(proc)
        raise RuntimeError(f"the MLflow server did not start; see {log}")
    return proc, url


class Tracking:
    """The tracking URI trials write to: `url`, and for a local server, `begin_stop` (SIGTERM now,
    so it stops while other things do; leaving `tracking_server` waits for it)."""

    def __init__(self, url: str, proc: subprocess.Popen | None = None):
        self.url, self.proc = url, proc

    def begin_stop(self) -> None:
        if self.proc is not None:
            _signal_group(self.proc, signal.SIGTERM)


@contextlib.contextmanager
def tracking_server(uri: str, meanwhile: Callable[[], None] | None = None):
    """Yield a Tracking serving `uri` (sqlite) over http on loopback; other URIs pass through
    untouched. `meanwhile` runs while the server starts (or at once, with no server to start)."""
    if not uri.startswith("sqlite:///"):
        if meanwhile is not None:
            meanwhile()
        yield Tracking(uri)
        return
    db = Path(uri.removeprefix("sqlite:///"))
    artifacts = (db.parent / "mlartifacts").resolve()
    args = ["--backend-store-uri", uri, "--artifacts-destination", artifacts.as_uri(), "--workers", "1"]
    # MLflow's job runner serves GenAI scorers, which attnlab never runs: off, it costs no process.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = db.parent / "mlflow-server.log"
    proc, url = start_mlflow_server(args, log, env=env, cwd=db.parent, meanwhile=meanwhile)
    try:
        yield Tracking(url, proc)
    finally:
        stop_group(proc)


def _stop_with_parent() -> None:
    """In the server's process, before exec: SIGTERM it when its parent (this driver) dies."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop_group(proc: subprocess.Popen, grace_s: float = 5) -> None:
    """SIGTERM the server's whole process group, then SIGKILL what is left after `grace_s`. An
    idle server loses nothing either way: every write it took is committed (sqlite's journal)."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)  # workers that outlived the server
    proc.wait(timeout=20)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """`sig` to the server's whole process group; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


# Ray's single-machine switch, the mode Ray uses on macOS and Windows: with it at "0", Ray binds its
# GCS, raylet and workers to 127.0.0.1 and advertises that address. Ray reads it once, when it is
# imported, and offers no argument for it (ray.init resolves an explicit 127.0.0.1 back to the
# machine's address), so it belongs in the environment a process starts with.
SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Set in a process that Ray's job submission started: the job's cluster and runtime env rule.
SUBMITTED_JOB = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def embedded_ray_environment(address: str | None, environ: dict | os._Environ = os.environ) -> dict[str, str]:
    """The environment a process that may start an embedded Ray needs before it imports Ray: Ray's
    single-machine switch, unless a cluster is named (`address`, RAY_ADDRESS, a submitted job) or the
    user set the switch. The `attnlab` command applies it at its start, as a user's `export` would;
    a Python caller does so itself (docs/sweeps.md)."""
    if address or environ.get("RAY_ADDRESS") or environ.get(SUBMITTED_JOB) or SINGLE_MACHINE in environ:
        return {}
    return {SINGLE_MACHINE: "0"}


def ray_stays_on_loopback() -> bool:
    """Whether a Ray started by this process binds to loopback only (Ray was imported with the switch):
    before ray.init, Ray's own node address is 127.0.0.1 exactly then."""
    import ray

    return ray.util.get_node_ip_address() in ("127.0.0.1", "::1")


def pin_ray_address() -> None:
    """Runs in every worker process of the embedded Ray as it starts (its runtime env's
    worker_process_setup_hook): RAY_ADDRESS names the worker's own cluster. Ray's State API, which
    Ray Train's placement-group cleaner calls with no address, otherwise looks the cluster up by
    auto-detection, which fails while another Ray runs on the machine ("Found multiple active Ray
    instances")."""
    import ray

    os.environ.setdefault("RAY_ADDRESS", ray.get_runtime_context().gcs_address)


def init_ray(address: str | None) -> None:
    """Connect to RAY_ADDRESS / --ray-address, or start an embedded local Ray."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # Trials queue behind each other on a small machine: wait for workers instead of failing at 60 s.
    start_timeout = os.environ.get("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "900")
    env = {
        "env_vars": {
            "RAY_TRAIN_V2_ENABLED": "1",
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
            "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": start_timeout,
        }
    }
    if os.environ.get(SUBMITTED_JOB):  # running as a submitted Ray job: its runtime env rules
        ray.init(address=address or "auto", log_to_driver=True)
    elif address:
        ray.init(address=address, runtime_env=env, log_to_driver=True)
    else:
        if not ray_stays_on_loopback():
            print(
                f"attnlab: warning: the embedded Ray will listen on {ray.util.get_node_ip_address()}, not "
                f"only on 127.0.0.1: this process imported Ray before {SINGLE_MACHINE}=0 was set. Set it "
                "before Python imports Ray (the attnlab command does), or name a cluster with RAY_ADDRESS",
                file=sys.stderr,
                flush=True,
            )
        # The dashboard serves Ray's State API, which Train needs to clean up the placement groups
        # of trials that Tune stops early; it listens on loopback only.
        # "local": a Ray of our own even when `ray start` left a cluster on this machine, which a
        # bare ray.init() would join (it reads /tmp/ray/ray_current_cluster).
        ray.init(
            address="local",
            runtime_env={**env, "worker_process_setup_hook": f"{__name__}.pin_ray_address"},
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            log_to_driver=True,
        )
