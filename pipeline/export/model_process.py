"""The export of runs' checkpoints as MLflow pytorch models, in a process of its own.

MLflow's `log_model` reads the tracking URI and experiment from the process (`set_tracking_uri`,
MLFLOW_EXPERIMENT_ID) and takes no argument for either. So that a caller's process keeps its own
settings, `models.log_models` runs the exports here, in one child started with both in its
environment (one child for every model of a call: torch, Lightning and MLflow load once); it prints
one line of JSON per model as it is logged, so a failure keeps the models made before it.
"""

from __future__ import annotations

import json
import sys

import mlflow
import torch

from attnlab.pipeline.export.models import MODEL_NAME, model_arguments, restore_module


def main(requests: list[dict]) -> None:
    for request in requests:
        module = restore_module(request["task"], request["checkpoint"])
        arguments = model_arguments(request["task"], module)
        with torch.no_grad():
            info = mlflow.pytorch.log_model(name=MODEL_NAME, run_id=request["run_id"], **arguments)
        made = {
            "run_id": request["run_id"],
            "model_uri": info.model_uri,
            "format": arguments["serialization_format"],
        }
        print(json.dumps(made), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
