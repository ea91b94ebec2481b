"""The fault drills' sweep: three tiny segmentation trials of three epochs, one at a time and no
early stopping, so a drill can stop the driver after the first trial and check the rest resume;
and how a drill runs `attnlab`."""

import json
import re
import subprocess
from pathlib import Path

from fault_injection import HOLD_ENV, HOLD_SPEC
from fault_injection import SPEC as FAULTS
from repo import ATTNLAB, HELPERS, run_attnlab


def start_driver(args: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    """`attnlab ARGS` in its own process group, so a drill can signal or kill it with all it started."""
    return subprocess.Popen(
        [ATTNLAB, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def attnlab(args: list[str], cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    """`attnlab ARGS` to the end, its output captured (tests/helpers/repo.py's runner, this env)."""
    return run_attnlab(args, cwd, timeout, env=env)


def drill_sweep(
    name: str,
    specs: str = '"w/o", "0010", "0001"',
    max_epochs: int = 3,
    max_failures: int = 2,
    faults: bool = False,
) -> str:
    callbacks = f'["{FAULTS}", "{HOLD_SPEC}"]' if faults else "[]"
    return f"""
name: {name}
max_epochs: {max_epochs}
grid:
  - task: segmentation
    specs: [{specs}]
    preset: tiny
    overrides: {{segmentation: {{crop_size: 64}}, data: {{batch_size: 4}}, limit_train_batches: 6}}
early_stopping: {{policy: none}}
max_concurrent_trials: 1
max_failures: {max_failures}
callbacks: {callbacks}
"""


# The drills wait for Tune's record of a trial's checkpoints, which Tune rewrites at most every
# max(10 s, 19 x its last save's time): on a loaded 2-core machine a save can take 20 s, and the
# wait for the record ran past 10 minutes in CI. The drills test attnlab's resume from that
# record, not Tune's cadence: they have Tune save its state every 2 s.
PROMPT_RECORD = {"TUNE_GLOBAL_CHECKPOINT_S": "2"}


def with_faults(env: dict, trial_epoch: str, hold: str = "") -> dict:
    """`env` for a driver whose trials can load tests/fault_injection.py (the `callbacks` key of the
    drill sweep), crash `trial_key:epoch` once and park `hold` (`trial_key:epoch`) once."""
    return {
        **env,
        "PYTHONPATH": str(HELPERS),
        "ATTNLAB_FAIL_ONCE": trial_epoch,
        HOLD_ENV: hold,
        **PROMPT_RECORD,
    }


def recorded_checkpoints(trial_dir: Path) -> list[Path]:
    """The checkpoints Ray's own record of a trial names (the ones it would restore from), oldest
    first, that are on disk. A one-worker trial is a Tune trial: Tune's newest experiment state in
    the sweep's folder holds its checkpoint manager (pickled; the names are read off its bytes). A
    multi-worker trial's folder under `train/` holds Ray Train's snapshot."""
    snapshot = trial_dir / "checkpoint_manager_snapshot.json"
    text = snapshot.read_text() if snapshot.exists() else _tune_record(trial_dir)
    names = set(re.findall(r"checkpoint_[0-9][0-9_.\-]*[0-9]", text))
    return sorted(trial_dir / n for n in names if (trial_dir / n / "checkpoint.ckpt").is_file())


def _tune_record(trial_dir: Path) -> str:
    """Tune's record of a trial's checkpoints as text: its checkpoint manager in the newest
    experiment state or, where that state cannot be read (cut short by a full disk), the trial's
    result.json, a line per reported result, each naming the checkpoint Tune had persisted."""
    # The newest by the timestamp in its name, as Tune picks it: on URI storage every sync rewrites
    # the older drivers' state files too, so their modification times say nothing.
    states = sorted(trial_dir.parent.glob("experiment_state-*.json"))
    try:
        trials = json.loads(states[-1].read_text())["trial_data"] if states else []
        for state, run in trials:
            if json.loads(state).get("relative_logdir") == trial_dir.name:
                manager = json.loads(run).get("checkpoint_manager", {}).get("value", "")
                return bytes.fromhex(manager).decode("latin-1")
        return ""
    except (ValueError, OSError):  # caught mid-write, or cut short
        results = trial_dir / "result.json"
        lines = results.read_text(errors="replace").splitlines() if results.exists() else []
        return " ".join(line for line in lines if '"checkpoint_dir_name"' in line)
