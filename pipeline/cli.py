"""The `attnlab` console script: one argparse tree, subcommands registered from small modules.

Bad input becomes one `attnlab: error: ...` line (exit status 2) before any compute.
"""
from __future__ import annotations

import argparse
import json
import sys

from .errors import ConfigError


def _cmd_attention(args: argparse.Namespace) -> int:
    from .attention_table import AttentionTableConfig, attention_table, format_rows
    from .config import validate

    data = {"dim": args.dim, "measure": args.measure}
    if args.specs:
        data["specs"] = args.specs
    if args.shape:
        data["shape"] = tuple(args.shape)
    elif args.dim == 1:
        data["shape"] = (2, 64, 512)
    for item in args.option or []:
        key, _, raw = item.partition("=")
        data.setdefault("options", {})[key] = json.loads(raw) if raw else True
    rows = attention_table(validate(AttentionTableConfig, data, "attention table"))
    print(json.dumps(rows, indent=2) if args.format == "json" else format_rows(rows))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    """The main job on embedded defaults (grows into the smoke sweep)."""
    from .attention_table import AttentionTableConfig, attention_table, format_rows

    print("attnlab: cost of every mechanism of the study at res4 (2 x 256 x 50 x 84)")
    print(format_rows(attention_table(AttentionTableConfig())))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("attention", help="parameters and FLOPs of attention specs at an input shape")
    p.add_argument("specs", nargs="*", help="attention specs (default: every spec of the study)")
    p.add_argument("--dim", type=int, default=2, choices=(1, 2), help="2: (N,C,H,W) maps; 1: (N,T,C) sequences")
    p.add_argument("--shape", type=int, nargs="+", help="input shape (default 2 256 50 84, or 2 64 512 for dim 1)")
    p.add_argument("--option", "-o", action="append", help="factory option KEY=VALUE, e.g. -o kv_stride=1")
    p.add_argument("--measure", action="store_true", help="also count FLOPs with torch's FlopCounterMode")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=_cmd_attention)

    p = sub.add_parser("run", help="the main job on embedded defaults")
    p.set_defaults(func=_cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ValueError) as exc:
        print(f"attnlab: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
