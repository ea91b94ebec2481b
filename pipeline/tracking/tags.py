"""Every MLflow tag key attnlab writes or searches by, and the values of `attnlab.kind`.

One module, so a writer and a query can never disagree on a spelling.
"""

KIND = "attnlab.kind"  # what a run is: one of the kinds below
SWEEP = "attnlab.sweep"  # the sweep a parent or trial run belongs to
TRIAL = "attnlab.trial_key"  # a trial's key inside its sweep (task, spec, seed)
TORN_CHECKPOINT = "attnlab.torn_checkpoint"  # what a trial found torn on restore, and used instead
RESUMED = "attnlab.resumed"  # the epoch (and checkpoint) a trial last resumed from after a fault
CONTINUED = "attnlab.continued"  # the epoch a trial went on from once its early-stopping rung was decided
STOPPED_EARLY = "attnlab.stopped_early"  # "true" on trials early stopping cut short
RACE = "attnlab.race"  # where a racing sweep's last decided round left the trial's configuration
RACE_ROUND = "attnlab.race_round"  # that round's number
RACE_COST = "attnlab.race_cost"  # the cost axis of the race's front
EARLY_STOPPING = "attnlab.early_stopping"  # cost-aware early stopping's decisions for the trial
P_FRONT = "attnlab.p_front"  # the trial's configuration's P(on the accuracy-cost front), at the sweep's end
KEPT_BY_FRONT = "attnlab.kept_by_front"  # "true" on trials the front rule promoted past a rung
RERUN = "attnlab.rerun"  # the one shell command that reruns a trial standalone, thread count included
SOURCE = "attnlab.source"  # a sweep's grid as the CLI chose it (--preset NAME [--size S] | --config F)
PROCESS = "attnlab.trial_process"  # host:pid of the process that trained a trial (reused across trials)
TASK, ATTENTION, SEED = "task", "attention", "seed"
CODE_VERSION = "code_version"  # git commit of the checkout (or the package version)
HOST, PID = "attnlab.host", "attnlab.pid"  # the process that owns a standalone run while it is RUNNING
PARENT = "mlflow.parentRunId"  # MLflow's own: nests trial runs under their sweep's run
MODEL_URI = "attnlab.model_uri"  # the run's best checkpoint as an MLflow model (models:/...)
MODEL_FORMAT = "attnlab.model_format"  # how that model is saved: pt2 (torch.export) or pickle
DESCRIPTION = "mlflow.note.content"  # MLflow's own: the run's description (markdown) in the UI

KIND_TRAIN, KIND_TRIAL, KIND_SWEEP = "train", "trial", "sweep"
TRAINING_KINDS = (KIND_TRIAL, KIND_TRAIN)  # runs that trained a model (what the rankings rank)

EPOCHS_DONE = "epochs_done"  # a metric, not a tag: epochs trained and evaluated (1-based)

# MLflow's own experiment tag: which view its UI opens (values from MLflow 3's UI, checked by a test).
EXPERIMENT_KIND = "mlflow.experimentKind"
KIND_MODEL_TRAINING = "custom_model_development"
