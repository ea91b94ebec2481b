"""A sweep's folder on any storage Ray accepts: a local path, a mounted volume, or a URI
(s3://bucket/sweeps?endpoint_override=minio:9000&scheme=http, gs://..., file://...).

`SweepStore` owns the sweep's whole on-disk layout; no other module names a file or folder in it:

    <root>/<name>/attnlab_sweep.json             the sweep's config, tracking URI and parent run
    <root>/<name>/driver.lock                    the driver that holds the sweep (tune/sweep_lock.py)
    <root>/<name>/early_stopping/<task>.pkl      each task's early-stopping rungs (Tune keeps none)
    <root>/<name>/early_stopping/decisions.json  what cost-aware early stopping decided per trial
    <root>/<name>/tuner.pkl, experiment_state-*  Tune's own experiment
    <root>/<name>/<trial key>/checkpoint_*       a one-worker trial's checkpoints (Tune's)
    <root>/<name>/train/<trial key>/             a multi-worker trial's checkpoints (Ray Train's)
    <root>/<name>/runs/, report/, faults/        scratch: spools, the report, files callbacks keep
    <root>/<name>/staging/<trial key>/           scratch: each epoch's checkpoint before Ray copies it

Ray stores the Tune experiment there; attnlab keeps its own small files beside it. What changes
while a sweep runs lives in a folder of its own (early_stopping/): a restored Tune experiment copies
every *.json and *.pkl file of the sweep's top folder into its driver's staging folder and uploads
that folder back over them each time it saves (Ray 2.60, `sync_down_experiment_state`), which put
the early-stopping rungs back as they were when the driver started (found by the chaos soak).
attnlab_sweep.json, written once per driver before Tune restores, is left where `find` looks for
it. Both go through
pyarrow's file systems, the ones Ray itself uses, so a sweep on S3/MinIO resumes as one on a local
disk does. Scratch folders stay on a local disk (`scratch`): beside the sweep when it is on one.
"""

from __future__ import annotations

import contextlib
import functools
import json
import posixpath
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnlab.pipeline.config.errors import ConfigError, StorageFull

if TYPE_CHECKING:
    import pyarrow.fs as pafs

DEFAULT_ROOT = "attnlab_runs/sweeps"


def is_uri(location: str) -> bool:
    return "://" in location


def absolute(path: str) -> str:
    """A local path made absolute where the driver runs (the folder `attnlab sweep` ran in): a trial
    trains in a folder of its own, where a relative path means something else. A URI stays."""
    if is_uri(path):
        return path
    return str(Path(path).expanduser().resolve())


def join(root: str, *parts: str) -> str:
    """root/parts for a path or a URI, keeping a URI's query (?endpoint_override=...) at the end."""
    base, sep, query = root.partition("?")
    return "/".join([base.rstrip("/"), *parts]) + sep + query


def _filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow file system, path inside it) of a local path or a URI."""
    import pyarrow.fs as pafs  # here, not at the top: validating a sweep never needs it

    if is_uri(location):
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), str(Path(location).resolve())


def remove_tree(location: str) -> None:
    """Delete a folder and everything in it, on a path or a URI; a missing folder is fine."""
    import pyarrow.fs as pafs

    fs, path = _filesystem(location)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)


def checkpoint_folders(location: str) -> tuple[pafs.FileSystem, list[str]]:
    """(file system, the `checkpoint_*` folders of a trial folder, path or URI, newest first: Ray
    numbers them in order); none where the folder does not exist."""
    import pyarrow.fs as pafs

    fs, path = _filesystem(location)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return fs, []
    found = [
        info.path
        for info in fs.get_file_info(pafs.FileSelector(path))
        if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_")
    ]
    return fs, sorted(found, reverse=True)


DROPPED = "dropped.txt"


def remove_checkpoints(location: str) -> None:
    """Empty the `checkpoint_*` folders of a trial folder (path or URI), keeping the rest of it. Each
    folder stays, holding only a note: Tune's state, saved every few seconds, may still name one for
    a trial that ended after it was saved, and a restore from that state fails on a checkpoint folder
    that is gone. From the note the trial restores, finds its MLflow run ended and trains nothing."""
    fs, folders = checkpoint_folders(location)
    for folder in folders:
        fs.delete_dir_contents(folder)
        with fs.open_output_stream(f"{folder}/{DROPPED}") as note:
            note.write(
                b"The trial ended; its results are in its MLflow run and this checkpoint was dropped.\n"
            )


LOW_SPACE = 256 * 2**20  # below this a trial cannot write a checkpoint of any model attnlab trains


def storage_full(root: str) -> str | None:
    """How little space is left where a local sweep lives, when it is too little to go on; None on a
    URI (its store reports its own errors) or with room to spare."""

    if is_uri(root):
        return None
    folder = Path(root).resolve()
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    return None if free >= LOW_SPACE else f"{free / 2**20:.0f} MB free on the file system of {root}"


class SweepStore:
    """The sweep's folder: every file and folder of its layout (the module's docstring), whole-file
    reads and atomic writes. It pickles (Tune keeps it with the experiment's scheduler)."""

    STATE = "attnlab_sweep.json"
    EARLY_STOPPING = "early_stopping"
    DECISIONS = f"{EARLY_STOPPING}/decisions.json"
    LOCK = "driver.lock"
    TUNER = "tuner.pkl"

    def __init__(self, root: str, name: str):
        self.root, self.name = root, name
        self.location = join(root, name)
        # Scratch of a sweep on a URI: under the folder the driver runs in, fixed here, since a trial
        # runs in a folder of its own Ray session (the store travels to it pickled).
        self._local_scratch = str(Path("attnlab_runs", "scratch", name).resolve())

    def resume_command(self) -> str:
        """The command that resumes this sweep from any folder: by name where it lives under the
        default storage of this folder, else by its folder."""
        if self.root == absolute(DEFAULT_ROOT):
            return f"attnlab resume {shlex.quote(self.name)}"
        return f"attnlab resume {shlex.quote(self.location)}"

    @functools.cached_property
    def _opened(self) -> tuple[pafs.FileSystem, str]:
        return _filesystem(self.location)  # on first use: naming a sweep's store loads no pyarrow

    @property
    def fs(self) -> pafs.FileSystem:
        return self._opened[0]

    @property
    def path(self) -> str:
        """The sweep's folder inside `fs`."""
        return self._opened[1]

    @classmethod
    def of(cls, name: str, storage: str | None) -> SweepStore:
        """The store of sweep `name` under `storage` (--storage; default ./attnlab_runs/sweeps)."""
        return cls(absolute(storage or DEFAULT_ROOT), name)

    @classmethod
    def find(cls, sweep: str, storage: str | None) -> SweepStore:
        """A stored sweep's store: `sweep` is its folder (a path or a URI) or its name under
        `storage`; an error names where it looked when neither holds one."""
        store = cls.from_folder(sweep)
        if not store.exists(cls.STATE):
            store = cls.of(sweep, storage)
        if not store.exists(cls.STATE):
            raise ConfigError(
                f"no sweep {sweep!r} found (looked for {cls.STATE} in {store.location}); give the "
                "sweep's name with the same --storage it ran with, or its folder"
            )
        return store

    @classmethod
    def from_folder(cls, folder: str) -> SweepStore:
        """The store of a sweep given by its folder (a path or a URI)."""
        base, sep, query = folder.partition("?")
        parent, _, name = base.rstrip("/").rpartition("/")
        root = (parent or ".") + sep + query
        return cls(root if is_uri(root) else absolute(root), name)

    # Files: whole reads, atomic writes.

    def _file(self, name: str) -> str:
        return f"{self.path}/{name}"

    def exists(self, name: str) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(self._file(name)).type == pafs.FileType.File

    def read_bytes(self, name: str) -> bytes | None:
        """The file's content, or None where there is none."""
        if not self.exists(name):
            return None
        with self.fs.open_input_stream(self._file(name)) as f:
            return f.read()

    def read_moved(self, name: str) -> bytes | None:
        """A file of early_stopping/, or where an attnlab before 2026-12-06 kept it (its name with
        a dash, in the top folder), for a sweep that one started."""
        data = self.read_bytes(name)
        return data if data is not None else self.read_bytes(name.replace("/", "-", 1))

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write a temporary file, then move it into place: a reader never sees half a file."""
        folder, base = posixpath.split(self._file(name))
        self.fs.create_dir(folder, recursive=True)
        tmp = posixpath.join(folder, f".{base}.tmp")
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        self.fs.move(tmp, self._file(name))

    def delete(self, name: str) -> None:
        """Remove the file; a missing one is fine."""
        if self.exists(name):
            self.fs.delete_file(self._file(name))

    def read_text(self, name: str) -> str | None:
        data = self.read_bytes(name)
        return None if data is None else data.decode()

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode())

    # attnlab's own files.

    def read_state(self) -> dict[str, Any] | None:
        """What the sweep's last driver wrote: {"sweep": config, "tracking_uri", "parent_run_id"}."""
        text = self.read_text(self.STATE)
        return None if text is None else json.loads(text)

    def write_state(self, sweep: dict[str, Any], tracking_uri: str, parent_run_id: str) -> None:
        state = {"sweep": sweep, "tracking_uri": tracking_uri, "parent_run_id": parent_run_id}
        self.write_text(self.STATE, json.dumps(state, indent=2))

    @staticmethod
    def rungs_file(task: str) -> str:
        """Where one task's early-stopping scheduler is saved (tune/schedulers.py)."""
        return f"{SweepStore.EARLY_STOPPING}/{task}.pkl"

    def decisions(self) -> dict[str, list[dict]]:
        """Trial key -> what cost-aware early stopping decided for it at each rung (none: {})."""
        data = self.read_moved(self.DECISIONS)
        return json.loads(data) if data else {}

    def write_decisions(self, made: dict[str, list[dict]]) -> None:
        self.write_text(self.DECISIONS, json.dumps(made))

    # Folders.

    def trial_folder(self, key: str) -> str:
        """Tune's folder of a trial: a one-worker trial's checkpoints live there."""
        return join(self.location, key)

    @property
    def train_storage(self) -> str:
        """Where Ray Train keeps the multi-worker trials' checkpoints (one folder per trial key)."""
        return join(self.location, "train")

    def scratch(self, *parts: str) -> str:
        """A folder for files a process needs on its own disk (checkpoint staging, spools, the
        report, generated data): beside the sweep on a file system, else under ./attnlab_runs."""
        if not is_uri(self.root):
            return join(self.location, *parts)
        return str(Path(self._local_scratch, *parts))

    def staging(self, key: str) -> str:
        """Where a trial's processes stage each epoch's checkpoint before Ray copies it in."""
        return self.scratch("staging", key)

    def drop_checkpoints(self, key: str) -> None:
        """A trial that finished or was stopped early never resumes: its Ray checkpoints can go (its
        best epoch is already in MLflow), Tune's (one worker) or Ray Train's (several). Best effort: a
        folder still being written is left alone."""
        with contextlib.suppress(OSError):
            remove_tree(join(self.train_storage, key))
        with contextlib.suppress(OSError):
            remove_checkpoints(self.trial_folder(key))
        # on this node; on another, the trial's next start clears its own
        shutil.rmtree(self.staging(key), ignore_errors=True)

    def full(self) -> StorageFull | None:
        """The error a full storage gives (how little room is left, what is intact, how to go on),
        or None while there is room."""
        low = storage_full(self.root)
        if low is None:
            return None
        return StorageFull(
            f"the sweep's storage is full ({low}): a checkpoint or Tune's state could not be written. "
            "Every checkpoint written before it is intact; free space, then "
            f"`attnlab resume {self.name}` continues the sweep"
        )

    # Tune's experiment.

    def tune_path(self) -> tuple[str, pafs.FileSystem]:
        """What Tuner.can_restore / Tuner.restore take: (path inside the file system, file system)."""
        return self.path, self.fs
