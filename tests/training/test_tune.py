"""tune: search space, SQLite resume, pruning, and workers sharing a real PostgreSQL study."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import optuna
import pytest
from conftest import TINY_TRAIN
from optuna.trial import TrialState

from geoconvnet.training.tune import (
    DEFAULT_SPACE,
    dashboard_hint,
    load_space,
    parse_space,
    sample,
    storage_url,
    tune,
)
from geoconvnet.utils.errors import ConfigError

FAST = {**TINY_TRAIN, "epochs": 1, "patience": 1}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _without(options: dict, *names: str) -> dict:
    """Options minus the searched ones (a flag for a searched option would fix it)."""
    return {k: v for k, v in options.items() if k not in names}


def _cli_flags(options: dict) -> list[str]:
    flags = []
    for key, value in options.items():
        flags += [f"--{key.replace('_', '-')}", str(value)]
    return flags


def _tune_cmd(data, studies, trials, *extra, **options) -> list[str]:
    return [sys.executable, "-m", "geoconvnet", "tune", "--data", str(data), "--studies-dir",
            str(studies), "--trials", str(trials), *extra, *_cli_flags({**FAST, **options})]


def _study(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


# -- search space -------------------------------------------------------------------------
def test_default_space_is_the_references_and_conditional_params_follow_the_scheduler():
    space = load_space(None)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_schedulers = set()
    for _ in range(30):
        trial = study.ask()
        values = sample(space, trial)
        study.tell(trial, 0.0)
        assert 1e-5 <= values["lr"] <= 1e-4 and 0.45 <= values["dropout"] <= 0.65
        assert 1e-6 <= values["weight_decay"] <= 1e-4
        seen_schedulers.add(values["scheduler"])
        # step_size and gamma exist only when the StepLR schedule is on
        assert ("step_size" in values) == (values["scheduler"] == "step")
        if "gamma" in values:
            assert 5 <= values["step_size"] <= 20 and 0.1 <= values["gamma"] <= 0.9
    assert seen_schedulers == {"step", "none"}
    assert set(DEFAULT_SPACE) == {"lr", "dropout", "weight_decay", "scheduler", "step_size", "gamma"}


def test_space_file_errors_name_the_file_and_parameter(tmp_path):
    bad = tmp_path / "space.yaml"
    bad.write_text("lr: {type: float, low: 1e-3, high: 1e-5}\n")
    with pytest.raises(ConfigError, match=r"space.yaml: lr: need low < high"):
        load_space(bad)
    with pytest.raises(ConfigError, match="'learning_rate' is not a training option"):
        parse_space({"learning_rate": {"low": 1, "high": 2}}, "space.yaml")
    with pytest.raises(ConfigError, match="gamma depends on scheduler"):
        parse_space({"gamma": {"low": 0.1, "high": 0.9, "if": {"scheduler": "step"}}})


def test_example_space_file_parses_and_samples_valid_configs():
    from dataclasses import replace

    from geoconvnet.training.config import TrainConfig

    space = load_space(Path(__file__).parents[2] / "configs" / "tune-space.yaml")
    study = optuna.create_study()
    for _ in range(5):
        trial = study.ask()
        replace(TrainConfig(), **sample(space, trial))  # raises on an invalid value
        study.tell(trial, 0.0)


def test_a_fixed_scheduler_switches_its_conditional_params_off():
    space = [p for p in load_space(None) if p.name != "scheduler"]
    trial = optuna.create_study().ask()
    values = sample(space, trial, fixed={"scheduler": "none"})
    assert values["scheduler"] == "none" and "step_size" not in values and "gamma" not in values


def test_the_dashboard_hint_never_shows_a_database_password(tmp_path):
    hint = dashboard_hint(tmp_path, "postgresql://optuna:s3cret@db.example:5432/studies")
    assert "s3cret" not in hint and "optuna:***@db.example:5432/studies" in hint
    assert str(tmp_path / "study.db") in dashboard_hint(tmp_path, None)
    assert "Pw/Secret" not in dashboard_hint(tmp_path, "postgresql://u:Pw/Secret@h/db")


def test_archs_adds_the_architecture_to_the_space():
    space = {p.name: p for p in load_space(None, ["resnet18", "resnet34"])}
    assert space["arch"].choices == ["resnet18", "resnet34"]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# -- SQLite default -------------------------------------------------------------------------
@pytest.mark.slow
def test_interrupted_sqlite_study_continues_with_its_earlier_trials(tiny_data, tmp_path):
    """Ctrl-C during trial 1; the same command again finishes the study, keeping trial 0."""
    cmd = _tune_cmd(tiny_data, tmp_path, 3, "--no-finalize", "--study", "s", epochs=3, patience=3)
    # Ctrl-C as a terminal sends it, even where the suite itself runs with SIGINT ignored
    # (started in the background by a non-interactive shell): the child must not inherit that.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=_default_sigint)
    trials_csv = tmp_path / "s" / "trials.csv"
    deadline = time.monotonic() + 240
    # Interrupt as soon as trial 1's training has started (its run folder exists): a fixed
    # wait after trial 0 let a quick trial 1 finish first now and then.
    while not (tmp_path / "s" / "trials" / "trial-0001").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "trial 1 never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    storage = storage_url(None, tmp_path / "s")
    before = {t.number: (t.state, t.params) for t in _study(storage, "s").trials}
    assert before[0][0] == TrialState.COMPLETE
    assert before[1][0] == TrialState.FAIL  # the interrupted trial is not counted
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=600)
    after = _study(storage, "s").trials
    assert after[0].params == before[0][1] and after[0].state == TrialState.COMPLETE
    assert sum(t.state in FINISHED for t in after) == 3
    with open(trials_csv, newline="") as f:
        assert [r["state"] for r in csv.DictReader(f)].count("COMPLETE") + \
            [t.state for t in after].count(TrialState.PRUNED) == 3


@pytest.mark.slow
def test_pruning_stops_a_trial_built_to_be_bad(tiny_data, tmp_path):
    """Trial 0 learns (lr 1e-3); trial 1 uses lr 5 and diverges: the median pruner stops it
    after its first epoch while trial 0 ran all of them."""
    space = tmp_path / "space.yaml"
    space.write_text("lr: {type: float, low: 1.0e-4, high: 10.0, log: true}\nscheduler: none\n")
    storage = storage_url(None, tmp_path / "p")
    (tmp_path / "p").mkdir()
    study = optuna.create_study(study_name="p", storage=storage, direction="minimize")
    study.enqueue_trial({"lr": 1e-3})
    study.enqueue_trial({"lr": 5.0})
    result = tune(str(tiny_data), 2, study="p", studies_dir=str(tmp_path), space=space,
                  pruner="median", pruner_startup=1, pruner_warmup=0, finalize=False,
                  **{**_without(FAST, "lr", "scheduler"), "epochs": 3, "patience": 3})
    good, bad = result.study.trials
    assert good.state == TrialState.COMPLETE and len(good.intermediate_values) == 3
    assert bad.state == TrialState.PRUNED and len(bad.intermediate_values) == 1
    assert (tmp_path / "p" / "trials" / "trial-0001" / "metrics.csv").read_text().count("\n") == 2


@pytest.mark.slow
def test_finalize_retrains_the_best_and_evaluates_on_test_once(tiny_data, tmp_path):
    from geoconvnet.data.cache import prepare

    cache = tmp_path / "cache"  # tune reads a cache wherever it reads a dataset folder
    prepare(tiny_data, cache, workers=1)
    result = tune(str(cache), 2, study="f", studies_dir=str(tmp_path), pruner="none",
                  sampler_seed=0, **FAST)
    summary = result.summary
    assert summary["best_trial"] == result.study.best_trial.number
    assert summary["test"]["split"] == "test" and summary["test"]["n"] == 32
    final = result.final_run
    assert (final / "best.safetensors").is_file() and (final / "eval" / "test-center").is_dir()
    out = tmp_path / "f" / "summary"
    assert {"optimization_history", "intermediate_values"} <= set(summary["figures"])
    for name in summary["figures"]:
        assert (out / f"{name}.png").stat().st_size > 5000
    text = (out / "summary.md").read_text()
    assert "## Trials" in text and "Final model on test" in text
    # every trial has its own TensorBoard logs and hparams entry
    assert len(list((tmp_path / "f" / "tb").iterdir())) == 2
    for i in range(2):
        trial_dir = tmp_path / "f" / "trials" / f"trial-000{i}"
        assert (trial_dir / "tb").is_dir() and (trial_dir / "best.safetensors").is_file()
        assert not (trial_dir / "last.safetensors").exists()  # trials are never resumed
        assert not (trial_dir / "train_state.pt").exists()
    # the model loads and predicts like any run
    from geoconvnet.inference.predict import predict

    image = next((Path(tiny_data) / "test").rglob("*.png"))
    assert predict(final, [str(image)], top_k=2)[0].error is None


# -- PostgreSQL: several workers on one study -------------------------------------------------
@pytest.fixture(scope="module")
def postgres_url():
    url = os.environ.get("GEOCONVNET_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must provide GEOCONVNET_TEST_POSTGRES (see .ci/run)")
        pytest.skip("no PostgreSQL server: run `make test` or scripts/test_postgres.sh")
    return url


def _pg(url: str) -> str:
    return storage_url(url, Path("."))


@pytest.mark.slow
def test_two_workers_share_a_postgres_study_without_duplicates(tiny_data, tmp_path, postgres_url):
    name = f"two-{uuid.uuid4().hex[:8]}"
    cmd = _tune_cmd(tiny_data, tmp_path, 4, "--no-finalize", "--study", name, "--storage",
                    postgres_url, "--pruner", "none", "--heartbeat", "2")
    workers = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for _ in range(2)]
    for w in workers:
        assert w.wait(timeout=600) == 0, w.stderr.read().decode()[-2000:]
    trials = _study(_pg(postgres_url), name).trials
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == 4
    assert len({t.number for t in trials}) == len(trials)
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 4
    assert len({t.user_attrs["run"] for t in finished}) == 4
    assert len({t.user_attrs["host"] for t in finished}) == 2  # both workers took trials
    for t in finished:
        assert (tmp_path / name / t.user_attrs["run"] / "metrics.csv").is_file()


@pytest.mark.slow
def test_killed_worker_leaves_its_trial_failed_and_the_study_completes(tiny_data, tmp_path,
                                                                       postgres_url):
    name = f"kill-{uuid.uuid4().hex[:8]}"
    storage = _pg(postgres_url)
    cmd = _tune_cmd(tiny_data, tmp_path, 3, "--no-finalize", "--study", name, "--storage",
                    postgres_url, "--pruner", "none", "--heartbeat", "1", epochs=3, patience=3)
    victim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    victim_trial = None
    while victim_trial is None:
        assert victim.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
        try:
            running = _study(storage, name).get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # study not created yet
            continue
        victim_trial = running[0].number if running else None
    survivor = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(2)
    victim.kill()  # SIGKILL: no chance to clean up, only the heartbeat tells
    victim.wait()
    assert survivor.wait(timeout=600) == 0, survivor.stderr.read().decode()[-2000:]
    trials = {t.number: t for t in _study(storage, name).trials}
    assert trials[victim_trial].state == TrialState.FAIL
    assert sum(t.state in FINISHED for t in trials.values()) == 3


def test_a_surplus_trial_gives_way_and_says_why():
    """Two workers that start the last trial together: the later trial number fails fast."""
    from geoconvnet.training.tune import SurplusTrial, _check_not_surplus

    study = optuna.create_study()
    first, second = study.ask(), study.ask()  # both RUNNING, study wants 1 trial
    _check_not_surplus(first, 1)
    with pytest.raises(SurplusTrial):
        _check_not_surplus(second, 1)
    assert "surplus" in study.trials[1].user_attrs["fail_reason"]


# -- passwords with special characters, on a server that checks them ---------------------------
SPECIAL = ["pa/ss", "pa@ss", "pa:ss", "pa%ss", "pa#ss", "p/@:%#w"]
RAW_OK = "Pw/Se:cr#et"  # SQLAlchemy reads this password right without escapes


@pytest.fixture(scope="module")
def password_role(postgres_url):
    """The role geoconvnet_pw (scripts/test_postgres.sh makes the server check its password)
    and a setter for its password that returns its URL (escaped, or as written)."""
    import psycopg

    def set_password(password: str, escaped: bool = True) -> str:
        with psycopg.connect(_pg(postgres_url).replace("+psycopg", ""), autocommit=True) as db:
            exists = db.execute("SELECT 1 FROM pg_roles WHERE rolname = 'geoconvnet_pw'"
                                ).fetchone()
            db.execute(psycopg.sql.SQL("{} ROLE geoconvnet_pw LOGIN SUPERUSER PASSWORD {}")
                       .format(psycopg.sql.SQL("ALTER" if exists else "CREATE"),
                               psycopg.sql.Literal(password)))
        written = quote(password, safe="") if escaped else password
        return f"postgresql://geoconvnet_pw:{written}@{postgres_url.split('@', 1)[1]}"

    return set_password


def _everything_written(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_password_with_a_slash_works_and_is_never_shown(tiny_data, tmp_path, password_role):
    """postgresql://u:Pw/Se:cr#et@host/db: the old redaction split at the first / and showed
    the rest; the URL comes from $GEOCONVNET_STORAGE (flags are in the process list)."""
    url = password_role(RAW_OK, escaped=False)
    name = f"pw-{uuid.uuid4().hex[:8]}"
    cmd = _tune_cmd(tiny_data, tmp_path, 1, "--no-finalize", "--study", name, "--pruner", "none")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "GEOCONVNET_STORAGE": url})
    assert done.returncode == 0, done.stderr[-2000:]
    shown = done.stdout + done.stderr + _everything_written(tmp_path)
    assert "geoconvnet_pw:***@" in shown  # the URL is shown, without its password
    for part in (RAW_OK, "Se:cr#et", quote(RAW_OK, safe="")):
        assert part not in shown
    wrong = subprocess.run(_tune_cmd(tiny_data, tmp_path, 1, "--study", name),
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "GEOCONVNET_STORAGE": url.replace("cr#et", "X/y")})
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    assert "X/y" not in wrong.stderr and "Traceback" not in wrong.stderr


@pytest.mark.parametrize("password", SPECIAL)
def test_every_special_character_reaches_the_server_and_is_never_shown(password_role,
                                                                       password):
    from sqlalchemy import create_engine, text

    url = password_role(password)
    engine = create_engine(storage_url(url, Path(".")))
    with engine.connect() as db:
        assert db.execute(text("SELECT current_user")).scalar() == "geoconvnet_pw"
    engine.dispose()
    hint = dashboard_hint(Path("."), url)
    assert password not in hint and quote(password, safe="") not in hint
