"""The fault drills' sweep: three tiny segmentation trials of three epochs, one at a time and no
early stopping, so a drill can stop the driver after the first trial and check the rest resume."""


def drill_sweep(name: str) -> str:
    return f"""
name: {name}
max_epochs: 3
grid:
  - task: segmentation
    specs: ["w/o", "0010", "0001"]
    preset: tiny
    overrides: {{segmentation: {{crop_size: 64}}, data: {{batch_size: 4}}, limit_train_batches: 6}}
early_stopping: {{policy: none}}
max_concurrent_trials: 1
max_failures: 2
"""
