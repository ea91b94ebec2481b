"""The export of one run's checkpoint as an MLflow pytorch model, in a process of its own.

MLflow's `log_model` reads the tracking URI and experiment from the process (`set_tracking_uri`,
MLFLOW_EXPERIMENT_ID) and takes no argument for either. So that a caller's process keeps its own
settings, `models.log_model` runs the export here, in a child started with both in its environment;
it prints the model's URI and format as its last line.
"""

from __future__ import annotations

import json
import sys

import mlflow
import torch

from attnlab.pipeline.export.models import MODEL_NAME, model_arguments, restore_module


def main(request: dict) -> None:
    module = restore_module(request["task"], request["checkpoint"])
    arguments = model_arguments(request["task"], module)
    with torch.no_grad():
        info = mlflow.pytorch.log_model(name=MODEL_NAME, run_id=request["run_id"], **arguments)
    print(json.dumps({"model_uri": info.model_uri, "format": arguments["serialization_format"]}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
