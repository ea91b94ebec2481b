"""attnlab: the study of spatial attention mechanisms as a training pipeline.

One argparse tree; each subcommand lives in attnlab/commands/. Bad input becomes one
`attnlab: error: ...` message (exit status 2) before any compute.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from attnlab.pipeline.config.errors import ConfigError, StorageFull
from attnlab.pipeline.training import interrupts
from attnlab.tune.local_services import embedded_ray_environment

from .commands import attention, best, data, effects, findings, report, run, submit, sweep, train

COMMANDS = [attention, data, train, sweep, run, best, report, findings, effects, submit]


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    parser = argparse.ArgumentParser(prog="attnlab", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"attnlab {version('attnlab')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    for choice in sub._choices_actions:  # `attnlab X --help` opens with what X does
        parser_of = sub.choices[choice.dest]
        parser_of.description = parser_of.description or f"{choice.help[0].upper()}{choice.help[1:]}."
    return parser


def _stop(signum, frame) -> None:
    """Ctrl-C and SIGTERM become exceptions, so the open MLflow run ends KILLED before the process
    does; the signal is recorded too, so training stops at its next batch should a library have
    swallowed the exception."""
    interrupts.record(signum)
    if _in_finaliser(frame):
        return  # an exception there is only printed ("Exception ignored"); the next batch stops
    raise interrupts.stop_error()


def _in_finaliser(frame) -> bool:
    """Whether the signal landed in a weakref callback or a __del__, which cannot raise."""
    while frame is not None:
        if frame.f_code.co_name == "__del__" or frame.f_code.co_filename.endswith("weakref.py"):
            return True
        frame = frame.f_back
    return False


def configure_process(args: argparse.Namespace) -> None:
    """What the `attnlab` process sets up once, as its own entry point, before any command imports Ray
    or MLflow: signals stop training cleanly; an embedded Ray stays on loopback (Ray's switch, read at
    import); MLflow draws no progress bars between attnlab's lines (a user's own setting wins)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    os.environ.update(embedded_ray_environment(getattr(args, "ray_address", None)))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def message(error: BaseException) -> str:
    """The error's own line. An error raised in a DataLoader worker comes back with the worker's
    traceback in its message (torch's ExceptionWrapper): its last line is the original message."""
    text = str(error)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_process(args)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("attnlab: interrupted", file=sys.stderr)
        return 130
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        if os.environ.get("ATTNLAB_DEBUG"):
            raise
        print(f"attnlab: error: {message(exc)}", file=sys.stderr)
        return 2
    except StorageFull as exc:
        print(f"attnlab: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
