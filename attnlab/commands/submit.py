"""`attnlab submit`: run a sweep on Kubernetes (KubeRay RayJob) or on a running Ray cluster."""

from __future__ import annotations

import argparse

from attnlab.pipeline.config.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("submit", help="submit a sweep as a KubeRay RayJob (or to a running Ray cluster)")
    p.add_argument("--preset", help="sweep preset")
    p.add_argument("--config", help="sweep YAML file (validated here and sent inline with the job)")
    p.add_argument("--size", choices=("cpu", "gpu"), help="the mini presets' size (default gpu on a cluster)")
    p.add_argument("--name", help="sweep name (default: the preset's / config's)")
    p.add_argument("--image", help="training image (required for Kubernetes)")
    p.add_argument(
        "--namespace", default="attnlab", help="Kubernetes namespace of the RayJob (default attnlab)"
    )
    p.add_argument("--gpus-per-trial", type=int, default=1, help="GPUs per worker pod")
    p.add_argument("--workers", type=int, default=2, help="worker pods (autoscaling from 0 to this)")
    p.add_argument("--dry-run", action="store_true", help="print the RayJob YAML instead of creating it")
    p.add_argument("--ray-address", help="http://HOST:8265 of a running Ray cluster: submit a Ray job there")
    p.add_argument(
        "--storage",
        default=None,
        help="the sweeps' storage on the cluster: a shared path or a URI "
        "(s3://...); default /shared/sweeps on Kubernetes",
    )
    p.add_argument("--tracking-uri", help="with --ray-address: the MLflow URI the cluster's trials log to")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlab.tune.presets import PRESETS
    from attnlab.tune.submit import (
        SHARED_SWEEPS,
        create_rayjob,
        render_rayjob,
        submit_to_ray,
        sweep_source,
        to_yaml,
    )
    from attnlab.tune.sweep_config import load_sweep

    sized = bool(args.preset) and getattr(PRESETS.get(args.preset), "sized", False)
    size = args.size or ("gpu" if sized else None)  # a cluster is for GPUs unless told otherwise
    sweep = load_sweep(args.preset, args.config, args.name, size=size)  # validated before anything is sent
    source = sweep_source(args.preset, None if args.preset else sweep.model_dump(mode="json"))
    if sized:
        source += ["--size", size]
    if args.ray_address:
        job = submit_to_ray(args.ray_address, source, sweep.name, args.storage, args.tracking_uri)
        print(f"submitted Ray job {job} to {args.ray_address}")
        return 0
    if not args.image:
        raise ConfigError("--image is required to submit to Kubernetes (or use --ray-address)")
    manifest = render_rayjob(
        sweep.name,
        args.image,
        source,
        namespace=args.namespace,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_trial,
        storage=args.storage or SHARED_SWEEPS,
    )
    print(to_yaml(manifest) if args.dry_run else create_rayjob(manifest))
    return 0
