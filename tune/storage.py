"""A sweep's folder on any storage Ray accepts: a local path, a mounted volume, or a URI
(s3://bucket/sweeps?endpoint_override=minio:9000&scheme=http, gs://..., file://...).

Ray stores the Tune experiment there; attnlab keeps its own small files beside it (the sweep's
config and parent run, the early-stopping rungs). Both go through pyarrow's file systems, the
ones Ray itself uses, so a sweep on S3/MinIO resumes as one on a local disk does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow.fs as pafs


def is_uri(location: str) -> bool:
    return "://" in location


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


def remove_checkpoints(location: str) -> None:
    """Delete the `checkpoint_*` folders of a trial folder (path or URI), keeping the rest of it."""
    fs, folders = checkpoint_folders(location)
    for folder in folders:
        fs.delete_dir(folder)


LOW_SPACE = 256 * 2**20  # below this a trial cannot write a checkpoint of any model attnlab trains


def storage_full(root: str) -> str | None:
    """How little space is left where a local sweep lives, when it is too little to go on; None on a
    URI (its store reports its own errors) or with room to spare."""
    import shutil

    if is_uri(root):
        return None
    folder = Path(root).resolve()
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    return None if free >= LOW_SPACE else f"{free / 2**20:.0f} MB free on the file system of {root}"


class SweepStore:
    """The sweep's folder: its location for Tune, and whole-file reads and atomic writes beside it."""

    def __init__(self, root: str, name: str):
        self.root, self.name = root, name
        self.location = join(root, name)
        self.fs, self.path = _filesystem(self.location)

    @classmethod
    def from_folder(cls, folder: str) -> "SweepStore":
        """The store of a sweep given by its folder (a path or a URI)."""
        base, sep, query = folder.partition("?")
        parent, _, name = base.rstrip("/").rpartition("/")
        return cls((parent or ".") + sep + query, name)

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

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write a temporary file, then move it into place: a reader never sees half a file."""
        self.fs.create_dir(self.path, recursive=True)
        tmp = self._file(f".{name}.tmp")
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

    def set_aside_torn_state(self) -> list[str]:
        """When Tune's newest experiment state does not parse (a full disk cut it short), or there
        is none beside its tuner.pkl (the disk filled before Tune first wrote it), rename Tune's
        state (experiment and searcher state, tuner.pkl) to *.torn, so the sweep starts a fresh
        Tune run instead of a restore that Tune would abandon; the names renamed."""
        import json

        import pyarrow.fs as pafs

        infos = [
            i
            for i in self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
            if i.type == pafs.FileType.File
        ]
        names = {i.base_name for i in infos}
        states = sorted(n for n in names if n.startswith("experiment_state-"))
        if not states and "tuner.pkl" not in names:
            return []  # a new sweep
        if states:
            try:
                json.loads(self.read_bytes(states[-1]) or b"")
                return []
            except ValueError:
                pass
        tune_state = ("experiment_state-", "basic-variant-state-", "search_gen_state-", "tuner.pkl")
        moved = sorted(i.base_name for i in infos if i.base_name.startswith(tune_state))
        for name in moved:
            self.fs.move(self._file(name), self._file(f"{name}.torn"))
        return moved

    def tune_path(self) -> tuple[str, pafs.FileSystem]:
        """What Tuner.can_restore / Tuner.restore take: (path inside the file system, file system)."""
        return self.path, self.fs


def scratch_dir(root: str, *parts: str) -> str:
    """A folder for files a process needs on its own disk (checkpoint staging, generated data,
    vocabularies): beside the sweep when it is on a file system, else under ./attnlab_runs."""
    return join(root, *parts) if not is_uri(root) else str(Path("attnlab_runs", "scratch", *parts).resolve())
