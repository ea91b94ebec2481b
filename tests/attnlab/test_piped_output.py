"""`attnlab train` piped to a file, as a log or CI captures it: its own lines and nothing torn, no
progress-bar redraws (a bar is drawn only on a terminal)."""

import subprocess
from pathlib import Path

from repo import ATTNLAB
from services import clean_env


def _piped(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`argv` run to the end with its output piped, as a log or CI captures it; it must succeed."""
    out = subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def test_a_piped_run_writes_whole_lines_and_no_bar(tmp_path):
    out = _piped(
        [ATTNLAB, "train", "--task", "segmentation", "--attention", "0010", "--max-epochs", "2"], tmp_path
    )
    assert "\r" not in out.stdout + out.stderr  # no bar's redraws
    lines = out.stdout.splitlines()
    epochs = [line for line in lines if "epoch " in line]
    assert [line.split()[:2] for line in epochs] == [["epoch", "1/2"], ["epoch", "2/2"]], out.stdout[:2000]
    assert out.stderr == "", out.stderr[-2000:]  # the libraries' messages are in the log file
    # Its last epoch is its best (0.17 then 0.27 mIoU): best.ckpt and last.ckpt are one file.
    (folder,) = (tmp_path / "attnlab_runs" / "checkpoints").iterdir()
    assert (folder / "best.ckpt").stat().st_ino == (folder / "last.ckpt").stat().st_ino


API_RUN = """
import attnlab
result = attnlab.train("segmentation", attention="0010", max_epochs=1, verbose={verbose})
print("mIoU", round(result["metrics"]["val/mIoU"], 4))
"""


def test_the_python_api_is_as_quiet_as_the_cli_unless_asked(tmp_path):
    """attnlab.train() prints attnlab's lines only; the libraries' (MLflow's INFO lines, Lightning's
    notes and deprecation warnings) go to the log file, or, with verbose=True, where they go."""

    def run(verbose: bool) -> str:
        out = _piped([str(Path(ATTNLAB).parent / "python"), "-c", API_RUN.format(verbose=verbose)], tmp_path)
        return out.stdout + out.stderr

    quiet = run(False).splitlines()
    assert [line.split()[0] for line in quiet] == ["device:", "epoch", "mIoU"], quiet
    assert "INFO mlflow" in run(True)
    (log,) = (tmp_path / "attnlab_runs" / "logs").glob("train-*.log")
    assert "INFO" in log.read_text()
