import json

from geoconvnet.cli import main
from geoconvnet.inference.predict import expand_paths, predict


def test_predict_top_k_probabilities(trained_run, tiny_data):
    image = next((tiny_data / "test").rglob("*.png"))
    [pred] = predict(trained_run, [str(image)], top_k=3)
    assert pred.error is None and len(pred.top) == 3
    probs = [p for _, p in pred.top]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6


def test_bad_file_fails_cleanly_while_others_succeed(trained_run, tiny_data, tmp_path, capsys):
    good = sorted((tiny_data / "test").rglob("*.png"))[:2]
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    code = main(["predict", str(trained_run), str(good[0]), str(bad), str(good[1]), "--json"])
    out = capsys.readouterr()
    assert code == 1
    results = json.loads(out.out)
    assert [r["error"] is None for r in results] == [True, False, True]
    assert all(len(r["top"]) == 4 for r in (results[0], results[2]))
    errors = [line for line in out.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "notes.png: not a readable image" in errors[0]
    assert "2 of 3 images in" in out.err and "images/s" in out.err


def test_expand_folders_and_globs(tiny_data):
    folder = tiny_data / "test"
    all_files = expand_paths([str(folder)])
    assert len(all_files) == 32
    assert expand_paths([str(folder / "*" / "0.png")]) == sorted(str(p) for p in folder.glob("*/0.png"))
    assert expand_paths(["no/such/*.png"]) == ["no/such/*.png"]  # reported, not dropped


def test_pin_in_the_table_and_the_json(trained_run, tiny_data, capsys, monkeypatch):
    from geoconvnet.utils.progress import console

    monkeypatch.setattr(console, "width", 240)  # one line per row
    image = str(next((tiny_data / "test").rglob("*.png")))
    assert main(["predict", str(trained_run), image, "--pin", "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    suggested, naive = result["pin"]["suggested"], result["pin"]["naive"]
    assert suggested["expected_score"] >= naive["expected_score"] > 0
    assert -90 <= suggested["lat"] <= 90 and -180 <= suggested["lon"] <= 180
    assert main(["predict", str(trained_run), image, "--pin"]) == 0
    assert "pin (expected score)" in capsys.readouterr().out
