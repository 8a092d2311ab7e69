import json
import tarfile

import pytest
from conftest import CHROMIUM_ARGS

from geoconvnet.report.page import compare, report
from geoconvnet.report.reference import reference_f1

FIGURES = ["curves.png", "compare_top1.png", "compare_top3.png", "f1_by_country.png", "confusion.png", "reliability.png",
           "world_accuracy.png", "similarity_tsne_raw.png", "similarity_tsne_cosine.png",
           "similarity_umap_raw.png", "similarity_umap_cosine.png", "predictions_correct.png"]


@pytest.fixture(scope="module")
def report_dir(trained_run, tiny_data):
    return report(trained_run, data=tiny_data, sample=4, archive=True)


def test_every_artefact_is_written(report_dir):
    for name in FIGURES + ["report.html", "per_class.csv", "confused_pairs.csv",
                           "calibration.json", "results.tar.gz"]:
        path = report_dir / name
        assert path.is_file() and path.stat().st_size > 0, name
    cards = list(report_dir.glob("figures/*/*.png"))
    assert len(cards) == 4  # the default sample, in per-country folders
    assert 0 <= json.loads((report_dir / "calibration.json").read_text())["ece"] <= 1


def test_archive_holds_results_and_figures(report_dir):
    with tarfile.open(report_dir / "results.tar.gz") as tar:
        names = tar.getnames()
    assert "results/metrics.csv" in names
    assert any(n.endswith("/predictions.csv") and "/eval/test-" in n for n in names)
    assert "results/report/confusion.png" in names


@pytest.mark.slow
def test_all_figures_writes_one_card_per_test_image(trained_run, tiny_data):
    out = report(trained_run, data=tiny_data, all_figures=True)
    assert len(list(out.glob("figures/*/*.png"))) == 32
    assert {p.name for p in (out / "figures").iterdir()} == \
        {"Albania", "Iceland", "Norway", "Uruguay"}


@pytest.mark.slow
def test_page_renders_in_headless_chromium(report_dir, chromium):
    from playwright.sync_api import sync_playwright

    executable = chromium
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda req: errors.append(f"network request: {req.url}")
                if not req.url.startswith(("file:", "data:")) else None)
        page.goto((report_dir / "report.html").as_uri())
        sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        # Sorting the country table by F1 is done by the page's script.
        page.click("#country-table th:nth-child(4)")
        first_f1 = page.eval_on_selector_all("#country-table tbody tr td:nth-child(4)",
                                             "cells => cells.map(c => parseFloat(c.textContent))")
        browser.close()
    assert errors == []
    assert len(sizes) >= len(FIGURES) + 4
    assert all(complete and width > 0 for complete, width in sizes)
    assert first_f1 == sorted(first_f1)


def test_compare_with_reference_curves(trained_run, tmp_path):
    written = compare([trained_run], ["resnet101", "resnet50"], tmp_path)
    assert [p.name for p in written] == ["compare_top1.png", "compare_top3.png"]
    assert all(p.stat().st_size > 0 for p in written)


def test_reference_f1_for_reference_architectures_only():
    f1 = reference_f1("resnet101")
    assert len(f1) == 85 and f1["Lebanon"] > 0.9 and "accuracy" not in f1
    assert reference_f1("resnet18") == {}


def test_two_countries_and_an_unknown_name(tmp_path):
    """A report from files alone (no model, no images): 2 classes, one not a real country."""
    import numpy as np
    import yaml

    from geoconvnet.inference.evaluate import EvalResult, write_results

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"arch": "resnet18", "eval_view": "center"}))
    (run / "metrics.csv").write_text(
        "epoch,train_loss,train_top1,train_top3,train_top5,val_loss,val_top1,val_top3,val_top5\n"
        "1,0.9,0.5,1,1,0.8,0.6,1,1\n2,0.7,0.7,1,1,0.6,0.8,1,1\n")
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])
    result = EvalResult({"loss": 0.5, "n": 4, "top1": 0.5, "top3": 1.0, "top5": 1.0,
                         "split": "test", "eval_view": "center"}, probs, np.array([0, 0, 1, 1]),
                        [str(tmp_path / f"missing{i}.png") for i in range(4)], ["Atlantis", "Norway"])
    write_results(result, run / "eval" / "test-center")
    out = report(run)
    page = (out / "report.html").read_text()
    assert "Not on the map (no ISO country found): Atlantis" in page
    assert "Similarity maps need at least 4 countries" in page
    assert (out / "world_accuracy.png").stat().st_size > 0


def test_the_views_are_shown_side_by_side_with_the_chosen_one_marked(report_dir):
    from geoconvnet.models.checkpoint import read_meta
    page = (report_dir / "report.html").read_text()
    meta = read_meta(report_dir.parent)
    chosen = meta["preprocessing"]["eval_view"]
    assert 'id="views"' in page and f"<td>{chosen} ✓</td>" in page
    for view, scores in meta["view_scores"].items():
        assert f"<td>{view}" in page and f"{scores['top1'] * 100:.1f}%" in page
