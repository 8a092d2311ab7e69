import torch
from PIL import Image

from geoconvnet.data.root import DataRoot
from geoconvnet.inference.core import UNLABELLED, infer
from geoconvnet.inference.evaluate import evaluate
from geoconvnet.inference.predict import predict
from geoconvnet.models.checkpoint import load_checkpoint


def test_paths_images_and_a_bad_file_in_one_batched_call(trained_run, tiny_data, tmp_path):
    model = load_checkpoint(trained_run)
    paths = sorted(str(p) for p in (tiny_data / "test").rglob("*.png"))[:5]
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    in_memory = Image.open(paths[1]).convert("RGB")
    run = infer(model, [paths[0], in_memory, str(bad), *paths[2:]], batch_size=2, num_workers=0)
    assert run.indices.tolist() == [0, 1, 3, 4, 5]
    assert list(run.failed) == [2] and "bad.png: not a readable image" in run.failed[2]
    assert run.probs.shape == (5, 4) and torch.allclose(run.probs.sum(dim=1), torch.ones(5))
    assert (run.labels == UNLABELLED).all() and run.images_per_s > 0
    from_file = infer(model, [paths[1]], num_workers=0)
    assert torch.allclose(run.logits[1], from_file.logits[0], atol=1e-5)


def test_workers_and_batch_size_do_not_change_the_result(trained_run, tiny_data):
    model = load_checkpoint(trained_run)
    data = DataRoot.open(tiny_data)
    samples = data.samples("test", model.class_names)
    one = infer(model, samples, data=data, batch_size=32, num_workers=0, view="center")
    two = infer(model, samples, data=data, batch_size=5, num_workers=2, view="grid")
    grid = infer(model, samples, data=data, batch_size=32, num_workers=0, view="grid")
    assert one.labels.tolist() == [label for _, label in samples]
    assert torch.allclose(two.logits, grid.logits, atol=1e-5)
    assert not torch.allclose(one.logits, grid.logits)  # the view is really applied


def test_predict_and_evaluate_agree_on_every_image(trained_run, tiny_data):
    """Both go through the one core: a folder given to predict gives the same top-1 and
    probability as evaluate's per-image predictions."""
    evaluated = evaluate(trained_run, tiny_data, write=False, num_workers=0)
    predicted = predict(trained_run, [str(tiny_data / "test")], top_k=1, batch_size=8)
    assert len(predicted) == 32 and predicted.images_per_s > 0
    by_path = {p.path: p.top[0] for p in predicted}
    for path, probs in zip(evaluated.paths, evaluated.probs):
        country, probability = by_path[path]
        assert country == evaluated.class_names[probs.argmax()]
        assert abs(probability - probs.max()) < 1e-5
