"""CLI subcommands, one module each; each module has `register(subparsers)`."""

TRACKING_URI_HELP = "MLflow URI (default: MLFLOW_TRACKING_URI or sqlite:///./mlflow.db)"
