"""A sweep's one owner, from its checks to its summary: `SweepRun`.

It holds the validated config, the sweep's store (its whole on-disk layout), the tracking URI
(resolved and checked once), the options the command gave, and while it runs the Tuner, the trials'
outcomes (`TrialBook`) and the live view. It alone opens and closes the sweep's MLflow runs (the
parent, and the trials Tune ended). `attnlab sweep`, `resume` and `run` and `attnlab.sweep()` /
`resume()` / `run()` all drive a sweep through it; what it returns is a typed `SweepSummary`.

Importing this module loads no Ray, MLflow or torch: `check` answers bad input first, and `run`
imports what drives the sweep.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TextIO

from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.config.validation import validate
from attnlab.pipeline.tracking.uri import check_tracking_uri

from .storage import SweepStore
from .sweep_config import SweepConfig, check_data, check_resources
from .sweep_lock import SweepLock

if TYPE_CHECKING:
    from .outcomes import SweepSummary, TrialBook, TrialOutcome


class SweepRun:
    def __init__(
        self,
        sweep: SweepConfig,
        *,
        storage: str | None = None,
        tracking_uri: str | None = None,
        ray_address: str | None = None,
        restart_errored: bool = False,
        origin: str | None = None,
        source: str | None = None,
        store: SweepStore | None = None,
    ):
        """`origin` (e.g. "preset smoke") goes into the parent run's description; a resume passes None
        and keeps the description the sweep started with. `source` (the flags that chose the grid)
        is kept as a tag, for the command that adds seeds to it."""
        self.sweep, self.store = sweep, store or SweepStore.of(sweep.name, storage)
        self.tracking_flag, self.ray_address = tracking_uri, ray_address
        self.restart_errored, self.origin, self.source = restart_errored, origin, source
        self.uri: str | None = None  # set by `check`
        self.served: str | None = None  # the URI the trials log to while the sweep runs
        self.parent_id: str | None = None
        self.book: TrialBook | None = None
        self.view = None
        self.race = None  # the race's Searcher (tune/race.py), when the sweep races its seeds
        self._stepped = False

    @classmethod
    def resume(
        cls,
        sweep: str,
        *,
        storage: str | None = None,
        tracking_uri: str | None = None,
        ray_address: str | None = None,
        restart_errored: bool = False,
    ) -> SweepRun:
        """The stored sweep `sweep` (its name under `storage`, or its folder), as it was started: its
        config and, unless told otherwise, its tracking URI."""
        store = SweepStore.find(sweep, storage)
        state = store.read_state()
        config = validate(SweepConfig, state["sweep"], "sweep")
        return cls(
            config,
            store=store,
            tracking_uri=tracking_uri or state["tracking_uri"],
            ray_address=ray_address,
            restart_errored=restart_errored,
        )

    # Before anything is written or started.

    def check(self) -> None:
        """Everything that can refuse the sweep, once, writing nothing: every data folder has a layout
        its task reads, the tracking URI answers, a trial fits this machine, the callbacks load, a
        sweep already stored under this name has this config, no other driver holds it, and the
        storage has room."""
        if self.uri is not None:
            return
        check_data(self.sweep)
        uri = check_tracking_uri(self.tracking_flag)
        check_resources(self.sweep, self.ray_address)
        from attnlab.pipeline.training.user_callbacks import check as check_callbacks

        check_callbacks(self.sweep.callbacks)
        state = self.store.read_state()
        # Compared after validation, so a field a newer attnlab added (with its default) is no change.
        if state is not None and _normalised(state["sweep"]) != self.sweep.model_dump(mode="json"):
            raise ConfigError(
                f"sweep {self.sweep.name!r} already exists at {self.store.location} with another config; "
                "resume it unchanged (`attnlab resume`) or pick a new --name"
            )
        SweepLock(self.store).check()
        full = self.store.full()
        if full is not None:
            raise full
        self.uri = uri

    def _check_new_trials(self) -> None:
        """A sweep that shares its MLflow experiment with others trains only trials they have not: a
        task/spec/seed another sweep there finished (or early stopping ended) is refused, naming it."""
        sweep = self.sweep
        if sweep.experiment_name == sweep.name:
            return
        from attnlab.pipeline.tracking import runs, tags
        from attnlab.pipeline.tracking.store import find_runs

        done = {
            (r.data.tags.get(tags.TASK), r.data.tags.get(tags.ATTENTION), r.data.tags.get(tags.SEED)): r
            for r in find_runs(self.uri, sweep.experiment_name, {tags.KIND: tags.KIND_TRIAL})
            if r.data.tags.get(tags.SWEEP) != sweep.name
            and (r.info.status == "FINISHED" or runs.stopped_early(r))
        }
        again = [t for t in sweep.trials() if (t.task, t.spec, str(t.seed)) in done]
        if again:
            seeds = sorted({t.seed for t in again})
            other = sorted({done[(t.task, t.spec, str(t.seed))].data.tags.get(tags.SWEEP) for t in again})
            raise ConfigError(
                f"{len(again)} trial(s) of sweep {sweep.name!r} already ran in experiment "
                f"{sweep.experiment_name!r} (sweep {', '.join(other)}), e.g. {again[0].trial_key}; "
                f"seed(s) {', '.join(map(str, seeds))} are taken: pass only new ones with --seeds"
            )

    # The sweep itself.

    def run(self, terminal: TextIO | None = None) -> SweepSummary:
        """Run the sweep, or resume it where its folder holds a Tune experiment, under its driver
        lock; `terminal`: where the live view draws (none: it shows nothing)."""
        self.check()
        from .live_view import LiveView
        from .outcomes import TrialBook

        trials = self.sweep.trials()
        self.book = TrialBook(
            None if self.sweep.racing else [t.trial_key for t in trials],  # a race's trials: as it gives them
            {t.trial_key: t.task for t in trials},
            self.sweep.max_epochs,
        )
        self.view = LiveView(self.book, terminal)
        self._check_new_trials()
        with SweepLock(self.store) as lock:
            if lock.recovered:
                held = lock.recovered
                self.view.say(
                    f"attnlab: took over the lock of a driver that is gone (pid {held.get('pid')} on "
                    f"{held.get('host')}, since {held.get('started')})"
                )
            return self._drive()

    def _drive(self) -> SweepSummary:
        import ray
        from mlflow.tracking import MlflowClient

        from attnlab.pipeline.analysis.report import publish_report
        from attnlab.pipeline.costs.axes import COSTS
        from attnlab.pipeline.tasks.registry import TASKS
        from attnlab.pipeline.tracking import runs, tags
        from attnlab.pipeline.tracking.store import code_version, ensure_experiment, flatten

        from .experiment import search, set_aside_torn_state, trainable, tuner
        from .local_services import init_ray, tracking_server
        from .outcomes import driving
        from .race import RaceHistory

        sweep, store, uri = self.sweep, self.store, self.uri
        config = sweep.model_dump(mode="json")
        embedded = not (ray.is_initialized() or self.ray_address or os.environ.get("RAY_ADDRESS"))
        # The local MLflow server (it creates a new store's tables) and Ray start side by side.
        with tracking_server(uri, meanwhile=lambda: init_ray(self.ray_address)) as server:
            self.served = server.url
            # Created against the store itself, so its artifact location is a path every process here
            # can read; the server, just up, has no client yet.
            ensure_experiment(MlflowClient(uri), sweep.experiment_name, uri)
            self.parent_id = runs.open_sweep(
                self.served,
                sweep.experiment_name,
                sweep=sweep.name,
                params=flatten(config),
                tags={
                    tags.CODE_VERSION: code_version(),
                    **({tags.DESCRIPTION: sweep.describe(self.origin)} if self.origin else {}),
                    **({tags.SOURCE: self.source} if self.source else {}),
                },
            )
            store.write_state(config, uri, self.parent_id)
            torn = set_aside_torn_state(store)
            if torn:
                self.view.say(
                    "attnlab: Tune's experiment state was cut short (a full disk?); its files are renamed "
                    f"*.torn ({', '.join(torn)}) and Tune starts afresh: finished trials are kept, the "
                    "others resume from their checkpoints"
                )
            fn = trainable(sweep, store, self.served, self.parent_id, recover=not self.restart_errored)
            history = RaceHistory(
                self.served,
                sweep.experiment_name,
                sweep.name,
                COSTS[sweep.early_stopping.cost],
                {g.task: TASKS[g.task].metric for g in sweep.grid},
                store.decisions,
            )
            parts = search(sweep, store, history if sweep.racing else None)
            self.race = parts.race
            experiment = tuner(sweep, store, fn, self.restart_errored, parts)
            try:
                with driving(self):
                    results = experiment.fit()
            except Exception as error:  # e.g. Tune reading back its own files, cut short as the disk filled
                full = self.store.full()
                if full is None:
                    raise
                raise full from error
            summary = self._settle(results)
            # The report needs no server with a sqlite store: it is written while the server and Ray stop.
            report_uri = uri if uri.startswith("sqlite:") else self.served
            reporting = ThreadPoolExecutor(1).submit(
                publish_report, report_uri, sweep.experiment_name, self.parent_id, store.scratch("report")
            )
            server.begin_stop()  # the server and Ray stop side by side
            if embedded:
                ray.shutdown()  # the Ray this sweep started: nothing runs on it any more
        summary.report = reporting.result()
        return summary

    # Tune's events (tune/outcomes.py's SweepEvents hands them here while `run` drives).

    def tune_step(self, trials: list) -> None:
        if self._stepped:
            return
        self._stepped = True  # the first step: trials a resumed sweep already ended count as done
        ended = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
        texts = _texts(self._decisions()) if ended else {}
        for trial in ended:
            self.book.end(trial, trial.status == "ERROR", texts)
        self.view.show(trials)

    def trial_result(self, trial, result: dict, trials: list) -> None:
        self.view.show(trials)

    def trial_ended(self, trial, trials: list, failed: bool) -> None:
        """A trial early stopping ended is closed at once (KILLED, tagged), so no later driver trains
        it again, even one that lost Tune's record of it (Tune state set aside after a full disk).
        What cost-aware early stopping decided for it is tagged and said."""
        decisions = self._decisions()
        outcome = self.book.end(trial, failed, _texts(decisions))
        self.view.show(trials, outcome)
        self._close(outcome, decisions.get(outcome.trial))

    def trial_retried(self, trial) -> None:
        self.book.retry(trial)

    def race_round(self, task: str, number: int, standing: dict, questions: list) -> None:
        """A race decided a round: each configuration's finished trials are tagged with where it
        stands (`attnlab best` shows it; a settled one keeps the round that settled it), and the
        view says it, with the findings' comparisons the round judged."""
        from attnlab.pipeline.tracking import tags
        from attnlab.pipeline.tracking.store import set_tags

        trial_runs, cost = self._trial_runs(), self.sweep.early_stopping.cost
        configurations = self.sweep.race_configurations()[task]
        for spec, state in sorted(standing.items()):
            text = state.describe()
            for trial in configurations[spec]:
                run = trial_runs.get(trial.trial_key)
                if run is not None and run.data.tags.get(tags.RACE) != text:
                    said = {tags.RACE: text, tags.RACE_ROUND: str(number), tags.RACE_COST: cost}
                    set_tags(self.served, run.info.run_id, said)
        lines = [f"  {spec}: {s.describe()}" for spec, s in sorted(standing.items())]
        lines += [f"  {q.describe()}" for q in questions]
        self.view.say(f"attnlab: {task} race, round {number} decided:\n" + "\n".join(lines))

    def tune_ended(self) -> None:
        self.view.close()

    # MLflow, by the outcomes.

    def _decisions(self) -> dict[str, tuple[str, bool]]:
        """Trial key -> (what cost-aware early stopping decided for it, in one line; whether the front
        rule kept it), as the scheduler last saved them (one read of the store); none for a trial it
        decided nothing for (another policy, or no rung reached)."""
        from attnlab.pipeline.costs.axes import UNITS

        from .pareto_asha import decisions_text

        unit = UNITS[self.sweep.early_stopping.cost]
        return {
            key: (decisions_text(mine, unit), any(d["rule"] == "front" for d in mine))
            for key, mine in self.store.decisions().items()
            if mine
        }

    def _trial_runs(self) -> dict:
        from attnlab.pipeline.tracking import tags
        from attnlab.pipeline.tracking.store import find_runs

        match = {tags.KIND: tags.KIND_TRIAL, tags.SWEEP: self.sweep.name}
        return {
            r.data.tags.get(tags.TRIAL): r for r in find_runs(self.served, self.sweep.experiment_name, match)
        }

    def _close(self, outcome: TrialOutcome, said: tuple[str, bool] | None, run=None) -> None:
        """End the trial's run as its outcome says, where it is still RUNNING (a failure FAILED, an
        early stop KILLED and tagged, an interruption KILLED with its checkpoints kept), and tag what
        early stopping decided for it (`said`, from `_decisions`)."""
        from attnlab.pipeline.tracking import runs, tags
        from attnlab.pipeline.tracking.store import find_run, set_tags

        from .outcomes import Status

        match = {tags.TRIAL: outcome.trial, tags.SWEEP: self.sweep.name}
        run = run or find_run(self.served, self.sweep.experiment_name, match)
        if run is None:
            return
        if run.info.status == "RUNNING":
            if outcome.status == Status.STOPPED:
                runs.close_stopped(self.served, run.info.run_id)
            else:
                ending = {Status.FAILED: "FAILED", Status.FINISHED: "FINISHED"}.get(outcome.status, "KILLED")
                runs.finish_run(self.served, run.info.run_id, ending)
        if said and run.data.tags.get(tags.EARLY_STOPPING) != said[0]:
            text, by_front = said
            set_tags(
                self.served,
                run.info.run_id,
                {tags.EARLY_STOPPING: text, **({tags.KEPT_BY_FRONT: "true"} if by_front else {})},
            )
            self.view.say(f"  {outcome.trial}: {text}")

    def _settle(self, results) -> SweepSummary:
        """Every trial's outcome once Tune's fit returned; the runs closed by it, the checkpoints
        nothing resumes (finished and early-stopped trials) dropped, the parent run ended."""
        from attnlab.pipeline.tracking import runs

        from .outcomes import Status, SweepSummary

        trial_runs, decisions = self._trial_runs(), self._decisions()
        outcomes = self.book.settle(results, trial_runs, _texts(decisions))
        for outcome in outcomes:
            run = trial_runs.get(outcome.trial)
            if run is not None:  # ended where RUNNING; tagged with its decisions in any case (an
                # earlier driver may have died between the trial's end and its tags)
                self._close(outcome, decisions.get(outcome.trial), run)
            if outcome.status in (Status.FINISHED, Status.STOPPED):
                self.store.drop_checkpoints(outcome.trial)
        statuses = {o.status for o in outcomes}
        if self.race is not None and not self.race.finished():
            statuses.add(Status.INTERRUPTED)  # the race has rounds to go: `attnlab resume` runs them
        if statuses <= {Status.FINISHED, Status.STOPPED}:
            runs.finish_run(self.served, self.parent_id, "FINISHED")
        elif Status.INTERRUPTED in statuses:
            runs.finish_run(self.served, self.parent_id, "KILLED")
        race = None
        if self.race is not None:
            race = {
                task: {c: s.describe() for c, s in state.latest.items()}
                for task, state in self.race.plans().items()
            }
        return SweepSummary(
            self.sweep,
            self.uri,
            self.parent_id,
            outcomes,
            race=race,
            race_open=self.race is not None and not self.race.finished(),
            resume=self.store.resume_command(),
        )


def _normalised(config: dict) -> dict | None:
    try:
        return SweepConfig.model_validate(config).model_dump(mode="json")
    except ValueError:
        return None


def _texts(decisions: dict[str, tuple[str, bool]]) -> dict[str, str]:
    """Trial key -> what early stopping decided for it, in one line (the outcomes' `early_stopping`)."""
    return {key: text for key, (text, _) in decisions.items()}
