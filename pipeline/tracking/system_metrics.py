"""MLflow's own system metrics (CPU, memory, disk, network and, where there is one, GPU utilisation
and memory) for a run, sampled by MLflow's monitor thread on the process that owns the run."""

from __future__ import annotations

import threading
import time

import lightning as L

SAMPLING_S = 10.0
FINISH_WAIT_S = 15.0


class SystemMetrics(L.Callback):
    """Starts MLflow's SystemMetricsMonitor when fit starts on global rank 0; stops it on teardown,
    which Lightning also reaches when fit fails or is interrupted."""

    def __init__(self, run_id: str, uri: str):
        self.run_id, self.uri = run_id, uri
        self.monitor = None
        self.started = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self.monitor = SystemMetricsMonitor(
            self.run_id,
            sampling_interval=SAMPLING_S,
            resume_logging=trainer.ckpt_path is not None,  # a resumed run continues its steps
            tracking_uri=self.uri,
        )
        self.monitor.start()
        self.started = time.monotonic()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Stops the monitor, waiting at most FINISH_WAIT_S: with the tracking server down, its last
        samples are left to MLflow's retries in a background thread rather than holding up the end of
        the run (MLflow retries for minutes); they land if the server comes back while the process lives."""
        if self.monitor is not None:
            if time.monotonic() - self.started < SAMPLING_S:
                # MLflow's monitor logs a sample only once an interval has passed: a fit shorter than
                # that would end with none. One sample now, so every run has its system metrics.
                self.monitor.collect_metrics()
                self.monitor.publish_metrics(self.monitor.aggregate_metrics())
            stopping = threading.Thread(target=self.monitor.finish, daemon=True)
            stopping.start()
            stopping.join(FINISH_WAIT_S)
            self.monitor = None
