"""Going on with a standalone run that stopped before its last epoch (Ctrl-C, SIGTERM, a crash, a
kill): its checkpoint folder keeps the config it trains with (`config.json`, written as it starts,
with its paths and tracking URI made absolute) and its newest epoch (`last.ckpt`). `attnlab train
--resume RUN` reopens the same MLflow run and trains on from there; it draws what the uninterrupted
run would have drawn (pipeline/training/randomness.py) and logs no step twice (the run's spool).

Everything here is read before Lightning is imported: a wrong id or a finished run is one line."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.config.train import TrainConfig
from attnlab.pipeline.config.validation import validate

CONFIG_NAME = "config.json"
BEST_NAME, LAST_NAME = "best.ckpt", "last.ckpt"  # one file where the last epoch is the best
DEFAULT_OUT_DIR = "attnlab_runs"


def checkpoint_folder(out_dir: str | Path, run_id: str) -> Path:
    """Where a standalone run keeps its checkpoints and its config."""
    return Path(out_dir).resolve() / "checkpoints" / run_id


def resume_command(folder: Path, run_id: str) -> str:
    """The command that goes on with the run: by id where its folder is the default one of the
    current folder, else by the folder itself."""
    if folder == checkpoint_folder(DEFAULT_OUT_DIR, run_id):
        return f"attnlab train --resume {run_id}"
    return f"attnlab train --resume {shlex.quote(str(folder))}"


def save_config(folder: Path, cfg: TrainConfig, tracking_uri: str) -> None:
    """The run's config as it trains, so that a resume needs nothing but the run: relative paths
    and the tracking URI as they resolved here (a resume may start from another folder)."""
    settings = cfg.model_dump(mode="json")
    settings["out_dir"] = str(Path(cfg.out_dir).resolve())
    if cfg.data.path != "tiny":
        settings["data"]["path"] = str(Path(cfg.data.path).resolve())
    settings["tracking"]["tracking_uri"] = _absolute(tracking_uri)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_NAME).write_text(json.dumps(settings, indent=2))


def _absolute(uri: str) -> str:
    path = uri.removeprefix("sqlite:///")
    if path != uri and not Path(path).is_absolute():
        return f"sqlite:///{Path(path).resolve()}"
    return uri


@dataclass(frozen=True)
class Resumption:
    """A run to go on with: its id, its config, and the checkpoint it goes on from (None when it
    stopped in its first epoch: it trains from the start, into the same run)."""

    run_id: str
    cfg: TrainConfig
    ckpt_path: str | None
    folder: Path  # its checkpoint folder


def find(run: str, out_dir: str | None = None) -> Resumption:
    """The run `run` names (an id under `out_dir`'s checkpoints, or the run's checkpoint folder),
    or a ConfigError saying what is missing and what to pass instead."""
    by_path = Path(run)
    folder = by_path.resolve() if by_path.is_dir() else checkpoint_folder(out_dir or DEFAULT_OUT_DIR, run)
    if not folder.is_dir():
        raise ConfigError(
            f"--resume {run}: no run's checkpoint folder at {folder}; pass the run id that `attnlab "
            "train` printed, from the folder it ran in (or with the --out-dir it had), or the folder itself"
        )
    saved = folder / CONFIG_NAME
    if not saved.is_file():
        raise ConfigError(
            f"--resume {run}: {folder} has no {CONFIG_NAME} (a sweep trial's folder, or a run started "
            "before attnlab kept it there); start the run again with the command that started it"
        )
    cfg = validate(TrainConfig, json.loads(saved.read_text()), str(saved))
    last = folder / LAST_NAME
    return Resumption(folder.name, cfg, str(last) if last.is_file() else None, folder)


def check_unfinished(tracking_uri: str, found: Resumption) -> None:
    """A finished run has nothing to go on with, and one still training must not get a second
    writer: both refused, before anything trains."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from attnlab.pipeline.tracking.owners import process_gone, this_host
    from attnlab.pipeline.tracking.tags import HOST, PID

    run_id, folder = found.run_id, found.folder
    try:
        run = MlflowClient(tracking_uri).get_run(run_id)
    except MlflowException as error:
        raise ConfigError(
            f"--resume {run_id}: the tracking store {tracking_uri} has no such run ({error.error_code}); "
            f"its checkpoints are in {folder}"
        ) from None
    status, owner = run.info.status, run.data.tags
    if status == "FINISHED":
        raise ConfigError(f"run {run_id} finished: there is nothing to resume (its checkpoints: {folder})")
    alive = owner.get(HOST) == this_host() and owner.get(PID) and not process_gone(owner[PID])
    if status == "RUNNING" and alive:
        raise ConfigError(
            f"run {run_id} is still training (process {owner[PID]}): stop it first, then resume"
        )
