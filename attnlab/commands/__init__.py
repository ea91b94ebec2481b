"""CLI subcommands, one module each; each module has `register(subparsers)`."""

EXPERIMENT_HELP = "MLflow experiment (a sweep's name, unless it ran with --experiment)"
FORMAT_HELP = "table: for reading (the default); json: for scripts"
TRACKING_URI_HELP = "MLflow URI (default: MLFLOW_TRACKING_URI or sqlite:///./mlflow.db)"
COST_HELP = (
    "cost axis of the Pareto front (default added_flops: whole-model FLOPs added over w/o; "
    "attention_flops counts the placed modules whole)"
)
