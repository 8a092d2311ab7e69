"""End to end through the real command line, as a user types it."""

import json
import subprocess
import sys

import pytest


def run(*args, cwd, check=True):
    proc = subprocess.run([sys.executable, "-m", "geoconvnet", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.mark.slow
def test_synth_train_evaluate_predict_resume(tmp_path):
    run("data", "synth", "data", "--classes", "3", "--per-class", "8", "--test-per-class", "3",
        "--size", "320x180", "--seed", "1", cwd=tmp_path)
    (tmp_path / "small.yaml").write_text("crop_size: 90\nimage_size: 48\nlr: 1e-3\n"
                                         "num_workers: 0\n")
    train = ["train", "--data", "data", "--arch", "resnet18", "--weights", "none", "--epochs", "2",
             "--batch-size", "8", "--name", "e2e", "--config", "small.yaml"]
    out = run(*train, cwd=tmp_path).stdout
    assert "Best epoch" in out
    run_dir = tmp_path / "runs" / "e2e"
    assert "image_size: 48" in (run_dir / "config.yaml").read_text()

    metrics = json.loads(run("evaluate", "runs/e2e", "--data", "data", "--json",
                             cwd=tmp_path).stdout)
    assert metrics["n"] == 9 and {"top1", "top3", "top5", "loss"} <= set(metrics)
    assert (run_dir / "eval" / "test-center" / "per_class.csv").is_file()

    table = run("predict", "runs/e2e", "data/test", "--top-k", "2", cwd=tmp_path).stdout
    assert "Predicted countries" in table and "data/test" in table

    run("train", "--resume", "--name", "e2e", "--epochs", "3", cwd=tmp_path)
    assert (run_dir / "metrics.csv").read_text().count("\n") == 4  # header + 3 epochs


@pytest.mark.slow
def test_errors_are_one_line_without_traceback(tmp_path):
    proc = run("train", "--data", "missing", "--weights", "none", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "missing/train: folder not found" in proc.stderr

    proc = run("evaluate", "nowhere.safetensors", "--data", ".", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "no such checkpoint" in proc.stderr


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "geoconvnet", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for command in ("data", "train", "evaluate", "predict"):
        assert command in out


@pytest.mark.parametrize("args, message", [
    (["compare", "nowhere"], "nowhere: not a run folder (no metrics.csv)"),
    (["data", "scan", "missing"], "missing: folder not found"),
    (["data", "verify", "."], ". is not a training cache"),
    (["train", "--data", "DATA", "--arch", "nosuch", "--weights", "none"],
     "unknown architecture 'nosuch'"),
    (["evaluate", "RUN", "--data", "DATA", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["tune", "--finalize", "--study", "nosuch"], "studies/nosuch: no study here"),
])
def test_bad_input_is_one_line_that_names_the_value(args, message, tiny_data, trained_run,
                                                    tmp_path, capsys, monkeypatch):
    from geoconvnet.cli import main

    monkeypatch.chdir(tmp_path)
    args = [{"DATA": str(tiny_data), "RUN": str(trained_run)}.get(a, a) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing was made for a command that failed
