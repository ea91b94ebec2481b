"""`attnlab attention`: parameters and FLOPs of attention specs at an input shape."""

from __future__ import annotations

import argparse
import json

from . import FORMAT_HELP


def register(sub) -> None:
    p = sub.add_parser("attention", help="parameters and FLOPs of attention specs at an input shape")
    p.add_argument("specs", nargs="*", help="attention specs (default: every spec of the study)")
    p.add_argument(
        "--dim", type=int, default=2, choices=(1, 2), help="2: (N,C,H,W) maps; 1: (N,T,C) sequences"
    )
    p.add_argument(
        "--shape", type=int, nargs="+", help="input shape (default 2 256 50 84, or 2 64 512 for dim 1)"
    )
    p.add_argument("--option", "-o", action="append", help="factory option KEY=VALUE, e.g. -o kv_stride=1")
    p.add_argument(
        "--measure",
        action="store_true",
        help="also count FLOPs with torch's FlopCounterMode and measure the forward pass's latency "
        "(median of 10) and peak memory at --shape, on the GPU if there is one, else the CPU",
    )
    p.add_argument("--format", choices=("table", "json"), default="table", help=FORMAT_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlab.pipeline.config.validation import validate
    from attnlab.pipeline.costs.attention_table import AttentionTableConfig, attention_table, format_rows

    data = {"dim": args.dim, "measure": args.measure}
    if args.specs:
        data["specs"] = args.specs
    if args.shape:
        data["shape"] = tuple(args.shape)
    elif args.dim == 1:
        data["shape"] = (2, 64, 512)
    for item in args.option or []:
        key, _, raw = item.partition("=")
        try:
            data.setdefault("options", {})[key] = json.loads(raw) if raw else True
        except json.JSONDecodeError:
            data.setdefault("options", {})[key] = raw
    rows = attention_table(validate(AttentionTableConfig, data, "attention table"))
    print(json.dumps(rows, indent=2) if args.format == "json" else format_rows(rows))
    return 0
