"""Embedded services for a laptop sweep: a local Ray and, for a sqlite store, a loopback MLflow server.

Parallel trials writing straight into one sqlite file hit "database is locked"; one `mlflow
server` process in front of the file is the single writer. It binds to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@contextlib.contextmanager
def tracking_server(uri: str):
    """Yield an http URI serving `uri` (sqlite) on loopback; other URIs pass through untouched."""
    if not uri.startswith("sqlite:///"):
        yield uri
        return
    db = Path(uri.removeprefix("sqlite:///"))
    port = free_port()
    artifacts = (db.parent / "mlartifacts").resolve()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--artifacts-destination",
        artifacts.as_uri(),
        "--workers",
        "1",
    ]
    log = open(db.parent / "mlflow-server.log", "ab")
    # Its own process group (the server starts uvicorn and job-runner workers), stopped as a whole;
    # and on Linux told to stop when this process dies, however it dies.
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=db.parent,
        start_new_session=True,
        preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_healthy(url, proc):
            raise RuntimeError(
                f"the local MLflow server did not start; see {db.parent / 'mlflow-server.log'}"
            )
        yield url
    finally:
        _stop_group(proc)
        log.close()


def _stop_with_parent() -> None:
    """In the server's process, before exec: SIGTERM it when its parent (this driver) dies."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the server's whole process group, then SIGKILL what is left after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # workers that outlived the server
    proc.wait(timeout=20)


def init_ray(address: str | None) -> None:
    """Connect to RAY_ADDRESS / --ray-address, or start an embedded local Ray."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # Trials queue behind each other on a small machine: wait for workers instead of failing at 60 s.
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "900")
    env = {
        "env_vars": {
            "RAY_TRAIN_V2_ENABLED": "1",
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
            "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": os.environ["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"],
        }
    }
    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):  # running as a submitted Ray job: its runtime env rules
        ray.init(address=address or "auto", log_to_driver=True)
    elif address:
        ray.init(address=address, runtime_env=env, log_to_driver=True)
    else:
        _loopback_only()
        # The dashboard serves Ray's State API, which Train needs to clean up the placement groups
        # of trials that Tune stops early; it listens on loopback only.
        # "local": a Ray of our own even when `ray start` left a cluster on this machine, which a
        # bare ray.init() would join (it reads /tmp/ray/ray_current_cluster).
        ray.init(
            address="local",
            runtime_env=env,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            log_to_driver=True,
        )


def _loopback_only() -> None:
    """Make the embedded Ray a single-machine Ray on 127.0.0.1: every port binds to loopback.

    On Linux Ray binds its GCS, raylet and workers to all interfaces and advertises the machine's
    address (ray.init resolves an explicit 127.0.0.1 back to it). Ray's own single-machine mode
    (the one it uses on macOS and Windows) keeps everything on loopback; it is chosen by an
    environment variable that Ray reads at import, so this process's copy is set too.
    """
    from ray._private import ray_constants

    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"  # GCS, raylet and workers read it
    ray_constants.ENABLE_RAY_CLUSTER = False  # this process imported Ray already
