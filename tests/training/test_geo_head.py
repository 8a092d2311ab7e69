"""The location head across the stages: training with coordinates, the checkpoint's heads,
evaluate's distances, predict's pin, old checkpoints."""

import csv
import json
import random
import shutil

import numpy as np
import pytest
from conftest import TINY_TRAIN

from geoconvnet.cli import main
from geoconvnet.data.index import index_dataset
from geoconvnet.data.countries import resolve
from geoconvnet.data.layout import image_files
from geoconvnet.data.places import Places
from geoconvnet.inference.evaluate import evaluate
from geoconvnet.inference.predict import predict
from geoconvnet.models.checkpoint import load_checkpoint, read_meta, save_checkpoint
from geoconvnet.models.heads import GEOCELL, heads_of
from geoconvnet.models.weights import read_state_dict
from geoconvnet.training.geohead import plan_geo
from geoconvnet.training.train import train
from geoconvnet.utils.errors import ConfigError

QUICK = {**TINY_TRAIN, "epochs": 2, "patience": 2, "eval_view": "center"}


def _with_coordinates(tiny_data, tmp_path, skip_every: int = 0):
    """A copy of the tiny dataset with a coordinates.csv: a random place inside each image's
    country (every ``skip_every``-th image left without one)."""
    root = tmp_path / "places"
    shutil.copytree(tiny_data, root)
    rng = random.Random(0)
    rows = []
    for n, path in enumerate(image_files(root)):
        relative = path[len(str(root)) + 1:]
        if skip_every and n % skip_every == 0:
            continue
        country = relative.split("/")[1]
        rows.append([relative, *Places(resolve(country).code, rng).point()])
    with open(root / "coordinates.csv", "w", newline="") as f:
        csv.writer(f).writerows([["file", "lat", "lon"]] + rows)
    return root


@pytest.fixture(scope="module")
def geo_run(tiny_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("geo")
    root = _with_coordinates(tiny_data, tmp, skip_every=7)
    run = train(data=str(root), runs_dir=str(tmp / "runs"), name="geo", geocells=12,
                geocell_min=4, **QUICK)
    return root, run


def test_a_root_with_coordinates_trains_a_location_head(geo_run):
    _, run = geo_run
    meta = read_meta(run)
    heads = heads_of(meta)
    assert [h["name"] for h in heads] == ["country", GEOCELL]
    cells = load_checkpoint(run).geocells
    assert 4 <= len(cells) <= 12 and heads[1]["size"] == len(cells)
    assert set(cells.countries) == set(meta["class_names"])  # every country has a cell
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert all(float(r["train_geo_loss"]) > 0 for r in rows)
    assert all(float(r["val_cell_median_km"]) > 0 for r in rows)


def test_evaluate_reports_both_pins_the_fields_way(geo_run, tmp_path):
    root, run = geo_run
    result = evaluate(run, root, split="test", num_workers=0, out_dir=tmp_path / "ev")
    geo = result.metrics["geo"]
    assert set(geo) == {"pin", "country_pin"}
    for m in geo.values():
        assert set(m) >= {"median_km", "mean_km", "geoscore", "within"}
        assert list(m["within"]) == ["1", "25", "200", "750", "2500"]
        assert 0 < m["geoscore"] <= 5000 and m["median_km"] >= 0
    with open(tmp_path / "ev" / "geo_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and {"pin_km", "country_pin_km", "lat", "lon"} <= set(rows[0])
    # images without coordinates (every 7th) are left out of the distances
    assert len(rows) == geo["pin"]["n"] < result.metrics["n"]


def test_evaluate_json_prints_the_geo_key(geo_run, tmp_path, capsys):
    root, run = geo_run
    assert main(["evaluate", str(run), "--data", str(root), "--json", "--num-workers", "0",
                 "--out", str(tmp_path / "ev")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["geo"]["pin"]["n"] > 0 and "country_pin" in printed["geo"]


def test_predict_pin_comes_from_the_location_head(geo_run):
    root, run = geo_run
    images = image_files(root / "test")[:2]
    results = predict(run, images, pin=True, num_workers=0)
    for r in results:
        out = r.to_dict()["pin"]
        assert out["source"] == "geocell"
        assert {"suggested", "naive", "country"} <= set(out)
        assert out["suggested"]["expected_score"] >= out["naive"]["expected_score"] - 1e-6


def test_knn_refinement_adds_a_third_pin(geo_run, tmp_path):
    root, run = geo_run
    result = evaluate(run, root, split="test", num_workers=0, write=False, refine="knn",
                      embedding_cache=tmp_path / "emb")
    assert set(result.metrics["geo"]) == {"pin", "pin_knn", "country_pin"}
    assert result.metrics["geo"]["pin_knn"]["n"] == result.metrics["geo"]["pin"]["n"]


def _country_only(run, path, keep_heads: bool = True):
    """The geo run's model without its location head (the country rows of its layer); with
    ``keep_heads`` False, metadata as written before heads existed."""
    meta = read_meta(run)
    k = len(meta["class_names"])
    state = read_state_dict(run / "best.safetensors")
    state["head.1.weight"], state["head.1.bias"] = state["head.1.weight"][:k], state["head.1.bias"][:k]
    meta["heads"] = meta["heads"][:1]
    if not keep_heads:
        del meta["heads"]
    return save_checkpoint(path, state, meta)


def test_a_country_only_model_reports_the_country_pin_alone(geo_run, tmp_path):
    root, run = geo_run
    model = _country_only(run, tmp_path / "country.safetensors")
    result = evaluate(model, root, split="test", num_workers=0, write=False)
    assert set(result.metrics["geo"]) == {"country_pin"}
    with pytest.raises(ConfigError, match="no location head"):
        evaluate(model, root, split="test", num_workers=0, write=False, refine="knn")


def test_geo_off_and_roots_without_coordinates_give_no_location_head(geo_run, tmp_path):
    root, _ = geo_run
    index = index_dataset(root, 0.1, 0)
    assert plan_geo("off", index, cells=8, min_size=4, tau_km=75, weight=1, seed=0) is None
    no_coords = tmp_path / "plain"
    shutil.copytree(root, no_coords, ignore=shutil.ignore_patterns("coordinates.csv"))
    plain = index_dataset(no_coords, 0.1, 0)
    assert plan_geo("auto", plain, cells=8, min_size=4, tau_km=75, weight=1, seed=0) is None
    with pytest.raises(ConfigError, match="no coordinates"):
        plan_geo("on", plain, cells=8, min_size=4, tau_km=75, weight=1, seed=0)


def test_a_checkpoint_from_before_heads_loads_and_predicts(geo_run, tmp_path):
    root, run = geo_run
    with_heads = _country_only(run, tmp_path / "new.safetensors")
    old = _country_only(run, tmp_path / "old.safetensors", keep_heads=False)
    model = load_checkpoint(old)
    assert model.geocells is None
    image = image_files(root / "test")[0]
    before, after = predict(with_heads, [image], num_workers=0), predict(old, [image],
                                                                         num_workers=0)
    assert after[0].top == before[0].top
    assert np.isfinite(after[0].top[0][1])


def test_data_geocells_shows_the_cells_of_a_root_and_of_a_run(geo_run, tmp_path, capsys):
    root, run = geo_run
    assert main(["data", "geocells", str(root), "--geocells", "12", "--geocell-min", "4",
                 "--out", str(tmp_path / "root.png")]) == 0
    from_root = capsys.readouterr().out
    assert main(["data", "geocells", str(run), "--out", str(tmp_path / "run.png")]) == 0
    from_run = capsys.readouterr().out
    cells = load_checkpoint(run).geocells
    # the same build as training's: the same number of cells
    assert f"{len(cells)} geocells" in from_root and f"{len(cells)} geocells" in from_run
    assert (tmp_path / "root.png").stat().st_size > 10_000
    assert (tmp_path / "run.png").stat().st_size > 10_000


def test_resume_keeps_the_runs_geocells_when_coordinates_change(geo_run, tmp_path):
    root, run = geo_run
    copy = tmp_path / "runs"
    shutil.copytree(run, copy / "geo")
    cells_before = load_checkpoint(copy / "geo").geocells
    with open(root / "coordinates.csv") as f:
        rows = list(csv.reader(f))
    edited = tmp_path / "coordinates.csv.bak"
    shutil.copy(root / "coordinates.csv", edited)
    try:  # every place moved: a fresh build would give other centres
        with open(root / "coordinates.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows[:1] + [[r[0], float(r[1]) + 0.5, r[2]]
                                                for r in rows[1:]])
        resumed = train(resume=True, name="geo", runs_dir=str(copy), epochs=3)
    finally:
        shutil.copy(edited, root / "coordinates.csv")
    cells_after = load_checkpoint(resumed / "last.safetensors").geocells
    assert np.array_equal(cells_after.centres, cells_before.centres)
    assert len(list(csv.DictReader(open(resumed / "metrics.csv")))) == 3
