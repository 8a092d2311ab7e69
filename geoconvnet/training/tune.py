"""Hyperparameter search with Optuna: honest (validation only), cheap (pruning), shareable.

Study folder ``<studies_dir>/<study>/``:
``study.db`` (the default SQLite storage), ``trials/trial-NNNN/`` (one ordinary run folder
per trial: config, metrics.csv, TensorBoard), ``tb/`` (hyperparameters + result of every
trial for TensorBoard's HParams tab), ``trials.csv``, and after finalizing
``final-trial-NNNN/`` (the retrained model, evaluated once on test) and ``summary/``.

Several ``tune`` processes -- on one machine or many -- share a study through a database
(``--storage postgresql://...``). Each process runs trials until the study holds the
requested number of finished (complete or pruned) trials. A heartbeat marks the trial of a
killed process as failed, and the others carry on.
"""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import time
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import optuna
from optuna.trial import TrialState
from torch.utils.tensorboard import SummaryWriter

from ..data.root import DataRoot
from ..inference.evaluate import evaluate
from ..utils.errors import ConfigError
from ..utils.io import write_csv, write_json, write_text
from ..utils.progress import console, log
from ..utils.urls import check_storage_url, scrubbed, shown_url
from .config import TrainConfig, coerce, load_yaml, resolve_config
from .train import LAST_NAME, STATE_NAME, train

# The reference's search space (its Optuna study), as a YAML --space file would write it.
DEFAULT_SPACE = {
    "lr": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True},
    "dropout": {"type": "float", "low": 0.45, "high": 0.65},
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-4, "log": True},
    "scheduler": {"type": "categorical", "choices": ["step", "none"]},
    "step_size": {"type": "int", "low": 5, "high": 20, "if": {"scheduler": "step"}},
    "gamma": {"type": "float", "low": 0.1, "high": 0.9, "if": {"scheduler": "step"}},
}
OBJECTIVES = {"val_loss": "minimize", "val_top1": "maximize"}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DB_NAME = "study.db"


# -- search space ------------------------------------------------------------------------
@dataclass
class Param:
    name: str
    kind: str  # float | int | categorical | fixed
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list = field(default_factory=list)
    value: object = None
    only_if: dict = field(default_factory=dict)  # sampled only when these params have these values

    def suggest(self, trial: optuna.Trial):
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, self.choices)
        return self.value


def parse_space(spec: dict, source: str = "search space") -> list[Param]:
    """``{name: {type, low, high, log} | {type: categorical, choices} | value}`` -> params.

    A plain value fixes that training option for every trial; ``if: {scheduler: step}``
    samples a parameter only when another one has that value."""
    known = {f.name for f in fields(TrainConfig)}
    params = []
    for name, item in spec.items():
        if name not in known:
            raise ConfigError(f"{source}: {name!r} is not a training option; known: "
                              f"{', '.join(sorted(known))}")
        params.append(_parse_param(name, item, source))
    names = {p.name for p in params}
    for p in params:
        missing = set(p.only_if) - names
        if missing:
            raise ConfigError(f"{source}: {p.name} depends on {', '.join(missing)}, which is not "
                              "in the space")
    return params


def _parse_param(name: str, item, source: str) -> Param:
    if not isinstance(item, dict):
        return Param(name, "fixed", value=item)
    kind = str(item.get("type", "float"))
    where = f"{source}: {name}"
    condition = item.get("if") or {}
    if kind == "categorical":
        choices = item.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: a categorical parameter needs a non-empty 'choices' list")
        return Param(name, kind, choices=choices, only_if=condition)
    if kind not in ("float", "int"):
        raise ConfigError(f"{where}: type {kind!r}; use float, int or categorical")
    try:
        low, high = float(item["low"]), float(item["high"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: needs numeric 'low' and 'high'") from exc
    log = bool(item.get("log", False))
    if not low < high or (log and low <= 0):
        raise ConfigError(f"{where}: need low < high (and low > 0 with log), got {low}, {high}")
    return Param(name, kind, low, high, log, only_if=condition)


def load_space(path: str | Path | None, archs: list[str] | None = None) -> list[Param]:
    spec = dict(DEFAULT_SPACE) if path is None else load_yaml(path)
    if archs:
        spec["arch"] = {"type": "categorical", "choices": list(archs)}
    return parse_space(spec, str(path) if path else "default search space")


def sample(space: list[Param], trial: optuna.Trial, fixed: dict | None = None) -> dict:
    """One trial's training options (conditional params only when their condition holds,
    judged on sampled and ``fixed`` values alike)."""
    types = {f.name: f.type for f in fields(TrainConfig)}
    values: dict = dict(fixed or {})
    for param in space:
        if all(values.get(k) == v for k, v in param.only_if.items()):
            values[param.name] = coerce(param.name, param.suggest(trial), types[param.name])
    return values


# -- storage and study ----------------------------------------------------------------------
def storage_url(storage: str | None, study_dir: Path) -> str:
    """Default: SQLite in the study folder. ``postgresql://`` uses psycopg (version 3)."""
    if storage is None:
        return f"sqlite:///{(study_dir / DB_NAME).resolve()}"
    check_storage_url(storage)
    if storage.startswith("postgresql://") or storage.startswith("postgres://"):
        return "postgresql+psycopg://" + storage.split("://", 1)[1]
    return storage


def open_study(name: str, storage: str, direction: str, pruner: optuna.pruners.BasePruner,
               heartbeat: int, seed: int | None = None) -> optuna.Study:
    rdb = _connect(storage, heartbeat)
    study = optuna.create_study(storage=rdb, study_name=name, direction=direction, pruner=pruner,
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise ConfigError(f"study {name!r} was created to {study.direction.name.lower()} its "
                          f"objective; --objective asks to {direction}. Use another --study.")
    return study


def _connect(storage: str, heartbeat: int, attempts: int = 5) -> optuna.storages.RDBStorage:
    """The storage, retried: workers starting together on an empty database race to create
    Optuna's tables, and the loser sees a unique-key violation although all is well."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for attempt in range(attempts):
            try:
                return optuna.storages.RDBStorage(storage, heartbeat_interval=heartbeat,
                                                  grace_period=2 * heartbeat)
            except ImportError as exc:
                raise ConfigError(f"storage {storage.split('://')[0]}: driver missing ({exc}); "
                                  "for PostgreSQL: pip install 'geoconvnet[postgres]'") from exc
            except Exception as exc:  # sqlalchemy errors: unreachable server, races, ...
                # A refused login does not get better by asking again.
                if attempt == attempts - 1 or "authentication failed" in str(exc):
                    reason = scrubbed(str(exc).splitlines()[0], storage)
                    raise ConfigError(f"cannot open the study storage {shown_url(storage)}: "
                                      f"{reason}") from None
                time.sleep(0.5 + attempt)


def make_pruner(name: str, warmup_epochs: int = 1, startup_trials: int = 5):
    """MedianPruner by default: a trial stops when its epoch-e value is worse than the median
    of earlier trials at epoch e. ``warmup_epochs`` spares the first (noisy) epochs."""
    if name == "median":
        # Steps are 1-based epochs; Optuna prunes from step n_warmup_steps on.
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials,
                                           n_warmup_steps=warmup_epochs + 1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup_epochs))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--pruner {name!r}: choose median, hyperband or none")


def counts(study: optuna.Study) -> dict[TrialState, int]:
    result = {state: 0 for state in TrialState}
    for trial in study.get_trials(deepcopy=False):
        result[trial.state] += 1
    return result


class SurplusTrial(Exception):
    """Raised when two workers started the last trial at once: the later one gives way."""


def _check_not_surplus(trial: optuna.Trial, n_trials: int) -> None:
    alive = sorted(t.number for t in trial.study.get_trials(deepcopy=False)
                   if t.state in FINISHED + (TrialState.RUNNING, TrialState.WAITING))
    if trial.number in alive and alive.index(trial.number) >= n_trials:
        reason = f"surplus: the study already has {n_trials} trials"
        trial.set_user_attr("fail_reason", reason)  # shows in optuna-dashboard
        raise SurplusTrial(f"trial {trial.number}: {reason}")


# -- one trial --------------------------------------------------------------------------------
def _epoch_values(run_dir: Path, objective: str) -> list[float]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [float(row[objective]) for row in csv.DictReader(f)]


def _best(values: list[float], objective: str) -> float:
    return min(values) if OBJECTIVES[objective] == "minimize" else max(values)


def objective_value(run_dir: Path, objective: str) -> float:
    """The best value of the objective over a run's epochs (the checkpoint's epoch for
    val_loss, the best epoch's accuracy for val_top1)."""
    values = _epoch_values(run_dir, objective)
    if not values:
        raise optuna.TrialPruned("no finished epoch")
    return _best(values, objective)


def make_objective(base: TrainConfig, space: list[Param], study_dir: Path, objective: str,
                   n_trials: int, fixed: dict | None = None):
    def run_trial(trial: optuna.Trial) -> float:
        _check_not_surplus(trial, n_trials)
        params = sample(space, trial, fixed)
        name = f"trial-{trial.number:04d}"
        # replace() re-runs the config's checks on the sampled values (e.g. scheduler names)
        cfg = replace(base, **params, name=name, runs_dir=str(study_dir / "trials"))
        if cfg.eval_view == "auto":  # trials compete on epochs' validation; the final run
            cfg = replace(cfg, eval_view=cfg.first_view)  # (finalize) chooses the view
        trial.set_user_attr("run", str(Path("trials") / name))
        trial.set_user_attr("host", f"{socket.gethostname()}:{os.getpid()}")
        console.rule(f"[bold]Trial {trial.number}[/] " + ", ".join(
            f"{k}={_fmt(v)}" for k, v in params.items()))

        def report(row: dict) -> None:
            trial.report(row[objective], row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {row['epoch']}: {objective} {row[objective]:.4f}")

        try:
            run = train(cfg, on_epoch=report)
        finally:
            _log_hparams(study_dir, name, params, study_dir / "trials" / name, objective)
            _drop_resume_files(study_dir / "trials" / name)
        return objective_value(run, objective)

    return run_trial


def _drop_resume_files(run_dir: Path) -> None:
    """A trial is never resumed: keep its best weights, drop the last-epoch weights and the
    optimizer state (3/4 of a trial's bytes; a ResNet-50 study would grow ~300 MB a trial)."""
    for name in (LAST_NAME, STATE_NAME):
        (run_dir / name).unlink(missing_ok=True)


def _log_hparams(study_dir: Path, name: str, params: dict, run_dir: Path, objective: str):
    """The trial's parameters and result for TensorBoard's HParams tab."""
    if not (run_dir / "metrics.csv").exists():
        return

    values = _epoch_values(run_dir, objective)
    best = _best(values, objective) if values else math.nan
    hparams = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in params.items()}
    with SummaryWriter(str(study_dir / "tb" / name)) as writer:
        writer.add_hparams(hparams, {f"hparam/{objective}": best}, run_name=".")


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# -- the worker loop --------------------------------------------------------------------------
@dataclass
class TuneResult:
    study_dir: Path
    study: optuna.Study
    final_run: Path | None = None
    summary: dict | None = None


def tune(data: str, trials: int = 10, *, study: str = "geoconvnet", studies_dir: str = "studies",
         storage: str | None = None, space: str | Path | None = None, archs=None,
         config_file: str | Path | None = None, objective: str = "val_loss",
         pruner: str = "median", pruner_warmup: int = 1, pruner_startup: int = 5,
         timeout: float | None = None, heartbeat: int = 60, sampler_seed: int | None = None,
         finalize: bool = True, final_epochs: int | None = None, poll: float | None = None,
         **overrides) -> TuneResult:
    """Run (or join) a study until it holds ``trials`` finished trials, then finalize.

    ``overrides`` are training options fixed for every trial (e.g. ``arch``, ``epochs``);
    ``config_file`` is a training YAML, as for ``train``. ``timeout`` (seconds) stops this
    worker from starting new trials after that long."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    base = resolve_config(config_file, data=data, **overrides)
    DataRoot.open(data).classes()  # a wrong --data fails now, before a study folder is made
    params = load_space(space, archs)
    # An explicit flag for a searched option fixes it (e.g. --scheduler none).
    fixed = {p.name: overrides[p.name] for p in params if overrides.get(p.name) is not None}
    if fixed:
        log("Fixed by flags, not searched: " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
        params = [p for p in params if p.name not in fixed]
    study_dir = Path(studies_dir) / study
    study_dir.mkdir(parents=True, exist_ok=True)
    url = storage_url(storage, study_dir)
    handle = open_study(study, url, OBJECTIVES[objective],
                        make_pruner(pruner, pruner_warmup, pruner_startup), heartbeat, sampler_seed)
    _save_settings(study_dir, base, params, objective, url, trials)
    _print_start(handle, study_dir, url, trials)
    run_trial = make_objective(base, params, study_dir, objective, trials, fixed)
    run_worker(handle, run_trial, trials, timeout, poll or min(10.0, heartbeat / 2), study_dir)
    result = TuneResult(study_dir, handle)
    state = counts(handle)
    # After a --timeout with trials still missing, the study is not over: no final model yet.
    if finalize and state[TrialState.COMPLETE] and sum(state[s] for s in FINISHED) >= trials:
        result.final_run, result.summary = finalize_study(handle, study_dir, base, objective,
                                                          final_epochs)
    return result


def run_worker(study: optuna.Study, run_trial, n_trials: int, timeout: float | None,
               poll: float, study_dir: Path) -> None:
    """Start trials while the study needs them; wait while other workers' running trials
    may still finish or fail (a dead worker's trial turns FAIL after the heartbeat's grace)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        state = counts(study)
        finished = sum(state[s] for s in FINISHED)
        if finished >= n_trials:
            break
        if deadline is not None and time.monotonic() >= deadline:
            log(f"[yellow]--timeout reached[/]: {finished}/{n_trials} trials finished; "
                "run the same command again to continue")
            break
        if finished + state[TrialState.RUNNING] >= n_trials and not state[TrialState.WAITING]:
            time.sleep(poll)  # the remaining trials are running elsewhere
            continue
        study.optimize(run_trial, n_trials=1, catch=(SurplusTrial,))
        write_trials_csv(study, study_dir)
    write_trials_csv(study, study_dir)


def _save_settings(study_dir, base, params, objective, url, trials) -> None:
    settings = {"objective": objective, "trials": trials, "storage": shown_url(url),
                "base_config": base.to_dict(),
                "space": {p.name: {k: v for k, v in vars(p).items() if v not in (None, [], {})}
                          for p in params}}
    write_json(study_dir / "tune_settings.json", settings, indent=1, default=str)


def _print_start(study, study_dir, url, trials) -> None:
    state = counts(study)
    finished = sum(state[s] for s in FINISHED)
    log(f"Study [bold]{study.study_name}[/] in {study_dir} (storage {shown_url(url)}): "
        f"{finished}/{trials} trials finished, {state[TrialState.RUNNING]} running, "
        f"{state[TrialState.FAIL]} failed")


def trial_rows(study: optuna.Study) -> list[dict]:
    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.params})
    rows = []
    for t in trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append({"number": t.number, "state": t.state.name, "value": t.value,
                     "epochs": len(t.intermediate_values),
                     **{n: t.params.get(n) for n in names},
                     "seconds": None if seconds is None else round(seconds, 1),
                     "run": t.user_attrs.get("run"), "worker": t.user_attrs.get("host")})
    return rows


def write_trials_csv(study: optuna.Study, study_dir: Path) -> None:
    rows = trial_rows(study)
    if rows:
        write_csv(study_dir / "trials.csv", list(rows[0]), rows)


# -- finalize -----------------------------------------------------------------------------
def finalize_study(study: optuna.Study, study_dir: Path, base: TrainConfig | None = None,
                   objective: str | None = None, final_epochs: int | None = None):
    """Retrain with the best parameters, evaluate once on test, write the summary.

    Returns (final run folder or None when another worker already claimed it, summary)."""
    settings = json.loads((study_dir / "tune_settings.json").read_text())
    objective = objective or settings["objective"]
    base = base or TrainConfig(**settings["base_config"])
    best = study.best_trial
    name = f"final-trial-{best.number:04d}"
    try:
        os.mkdir(study_dir / name)  # atomic claim: one worker finalizes a given best trial
    except FileExistsError:
        log(f"{study_dir / name} exists: this best trial was finalized (or is being "
            "finalized) already; delete that folder to redo it")
        return None, None
    cfg = replace(base, **best.params, name=name, runs_dir=str(study_dir),
                  epochs=final_epochs or base.epochs)
    console.rule(f"[bold]Final model[/]: trial {best.number}'s parameters, {cfg.epochs} epochs")
    run = train(cfg)
    test = evaluate(run, cfg.data, split="test", pins=False)
    summary = write_summary(study, study_dir, run, test.metrics, objective)
    return run, summary


def write_summary(study: optuna.Study, study_dir: Path, final_run: Path | None,
                  test_metrics: dict | None, objective: str) -> dict:
    out = study_dir / "summary"
    out.mkdir(exist_ok=True)
    figures = save_tuning_plots(study, out, objective)
    state = counts(study)
    best = study.best_trial
    summary = {"study": study.study_name, "objective": objective, "best_trial": best.number,
               "best_value": best.value, "best_params": best.params,
               "trials": {s.name.lower(): n for s, n in state.items() if n},
               "final_run": str(final_run) if final_run else None, "test": test_metrics,
               "figures": figures}
    write_json(out / "summary.json", summary, indent=1, default=str)
    write_text(out / "summary.md", summary_markdown(summary, trial_rows(study)))
    return summary


def summary_markdown(summary: dict, rows: list[dict]) -> str:
    lines = [f"# Study {summary['study']}", "",
             f"Objective: {summary['objective']} on the validation split (the test split is used "
             "once, by the final model). Trials: "
             + ", ".join(f"{n} {s}" for s, n in summary["trials"].items()) + ".", "",
             f"## Best trial: {summary['best_trial']} ({summary['objective']} "
             f"{summary['best_value']:.4f})", "", "| parameter | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in summary["best_params"].items()]
    if summary["test"]:
        t = summary["test"]
        lines += ["", f"## Final model on test ({summary['final_run']})", "",
                  "| top-1 | top-3 | top-5 | loss | images |", "|---:|---:|---:|---:|---:|",
                  f"| {t['top1']:.1%} | {t['top3']:.1%} | {t['top5']:.1%} | {t['loss']:.3f} | "
                  f"{t['n']} |"]
    lines += [""] + [f"![{name}]({name}.png)" for name in summary["figures"]]
    if rows:
        cols = list(rows[0])
        lines += ["", "## Trials", "", "| " + " | ".join(cols) + " |",
                  "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join("" if r[c] is None else _fmt(r[c]) for c in cols) + " |"
                  for r in rows]
    return "\n".join(lines) + "\n"


def dashboard_hint(study_dir: Path, storage: str | None) -> str:
    """How to browse a study; a storage URL's password is never shown (put yours back in)."""
    url = shown_url(storage) if storage else f"sqlite:///{study_dir / DB_NAME}"
    return (f"Browse the study: pip install optuna-dashboard && optuna-dashboard {url}\n"
            f"Per-trial curves: tensorboard --logdir {study_dir}")


def save_tuning_plots(study: optuna.Study, out: Path, objective: str) -> list[str]:
    """Optimisation history, parameter importance and per-epoch curves (pruned trials
    visible), as PNGs; returns the names written. Importance needs >= 2 complete trials
    whose values differ, so it is skipped otherwise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    plots = {"optimization_history": ovm.plot_optimization_history,
             "intermediate_values": ovm.plot_intermediate_values,
             "param_importances": ovm.plot_param_importances}
    written = []
    for name, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ax = plot(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                log(f"[dim]{name} plot skipped: {exc}[/]")
                continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        if name == "intermediate_values":  # Optuna's steps are our epochs
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"validation {objective.removeprefix('val_')}")
        fig.set_size_inches(8, 4.5)
        fig.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(name)
    return written


def finalize(study: str = "geoconvnet", studies_dir: str = "studies", storage: str | None = None,
             final_epochs: int | None = None):
    """``geoconvnet tune --finalize``: retrain and summarise an existing study now."""
    study_dir = Path(studies_dir) / study
    if not (study_dir / "tune_settings.json").is_file():
        raise ConfigError(f"{study_dir}: no study here (tune_settings.json missing); check "
                          "--study and --studies-dir")
    settings = json.loads((study_dir / "tune_settings.json").read_text())
    url = storage_url(storage, study_dir)
    try:
        handle = optuna.load_study(study_name=study, storage=_connect(url, heartbeat=60))
    except KeyError as exc:  # optuna's way of saying the storage has no such study
        raise ConfigError(f"no study {study!r} in {shown_url(url)}; check --study and "
                          "--storage") from exc
    if not counts(handle)[TrialState.COMPLETE]:
        raise ConfigError(f"study {study!r} has no complete trial yet; nothing to finalize")
    return finalize_study(handle, study_dir, objective=settings["objective"],
                          final_epochs=final_epochs)
