"""A run's tracking calls against a real `mlflow server` that goes down and comes back: while it is
down, each call returns at once and is kept on disk; once it is back, everything is sent in order,
uploads included, and nothing is sent twice. A bad request is still an error."""

import os
import signal
import time

import pytest
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from attnlab.pipeline.tracking.spool import Spool
from attnlab.tune.local_services import start_mlflow_server


class Server:
    """`mlflow server` on a sqlite file, on a loopback port the kernel picks the first time, that
    can stop and start again on that same port."""

    def __init__(self, root):
        self.root, self.port, self.proc, self.url = root, 0, None, None

    def start(self) -> "Server":
        args = ["--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}", "--workers", "1"]
        args += ["--artifacts-destination", (self.root / "artifacts").as_uri()]
        self.proc, self.url = start_mlflow_server(args, self.root / "server.log", self.port)
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        """The server and any worker process it started, all gone (its own process group)."""
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path).start()
    yield s
    if s.proc.poll() is None:
        s.stop()


def _metric(value: float, step: int) -> Metric:
    return Metric("val/score", value, int(time.time() * 1000), step)


def test_calls_wait_on_disk_while_the_server_is_down_and_go_in_order_when_it_is_back(server, tmp_path):
    client = MlflowClient(server.url)
    run_id = client.create_run(client.create_experiment("spool")).info.run_id
    spool = Spool(server.url, tmp_path / "spool")
    spool.log_batch(run_id, metrics=[_metric(0.1, 1)], params=[Param("lr", "0.1")])
    assert not spool.file.exists()  # the server was up: sent at once

    server.stop()
    weights = tmp_path / "best.ckpt"
    weights.write_bytes(b"weights of epoch 2")
    started = time.monotonic()
    spool.log_batch(run_id, metrics=[_metric(0.2, 2)])
    spool.log_artifact(run_id, weights, "checkpoints")
    spool.log_batch(run_id, metrics=[_metric(0.3, 3)])
    assert time.monotonic() - started < 30  # training is not held up by the outage
    weights.unlink()  # the caller's file may go: the spool kept a copy
    assert [op["op"] for op in spool.pending] == ["log_batch", "log_artifact", "log_batch"]
    assert spool.flush() is False  # still down

    server.start()
    assert spool.flush(wait_s=60) is True and not spool.file.exists()
    history = client.get_metric_history(run_id, "val/score")
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.2), (3, 0.3)]  # in order, once each
    assert client.get_run(run_id).data.params == {"lr": "0.1"}
    local = client.download_artifacts(run_id, "checkpoints/best.ckpt", str(tmp_path / "back"))
    assert open(local, "rb").read() == b"weights of epoch 2"

    with pytest.raises(MlflowException):  # not an outage: the caller hears about it
        spool.log_batch("no-such-run", metrics=[_metric(0.4, 4)])
