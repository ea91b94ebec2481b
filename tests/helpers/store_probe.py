"""Read a sqlite MLflow store while another process writes it, without ever writing to it.

An `MlflowClient` on a sqlite URI creates and migrates the tables when it finds them missing. Polled
while an attnlab process (or its MLflow server) is still creating them, two migrations collide and
the store is left half-built, so tests that watch a live store read it here, read-only, instead.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

_RUNS = """
SELECT r.run_uuid, r.status FROM runs r JOIN experiments e ON r.experiment_id = e.experiment_id
WHERE e.name = ? AND r.lifecycle_stage = 'active'
"""


def live_runs(db: Path, experiment: str) -> list[dict]:
    """Each active run of `experiment`: run_id, status, tags and the keys of its metrics.

    Empty while the store or the experiment does not exist yet."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=10) as con:
            runs = []
            for run_id, status in con.execute(_RUNS, (experiment,)).fetchall():
                tags = dict(con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)))
                metrics = con.execute("SELECT key FROM latest_metrics WHERE run_uuid = ?", (run_id,))
                keys = {k for (k,) in metrics}
                runs.append({"run_id": run_id, "status": status, "tags": tags, "metrics": keys})
            return runs
    except sqlite3.OperationalError:  # tables not created yet, or the writer holds the lock
        return []
