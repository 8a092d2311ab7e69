import hashlib

import numpy as np
import pytest

from geoconvnet.data import synth as S
from geoconvnet.utils.errors import ConfigError


def _digest(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_layout_and_counts(tmp_path):
    root = S.synth(tmp_path / "d", classes=3, per_class=4, test_per_class=2, size=(160, 90),
                   workers=1)
    names = S.class_names(3)
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(names)
    for name in names:
        assert len(list((root / "train" / name).glob("*.png"))) == 4
        assert len(list((root / "test" / name).glob("*.png"))) == 2
    from PIL import Image
    with Image.open(root / "train" / names[0] / "0.png") as img:
        assert img.size == (160, 90) and img.mode == "RGB"


def test_deterministic_per_seed(tmp_path):
    a = S.synth(tmp_path / "a", classes=2, per_class=2, size=(160, 90), seed=1, workers=1)
    b = S.synth(tmp_path / "b", classes=2, per_class=2, size=(160, 90), seed=1, workers=2)
    c = S.synth(tmp_path / "c", classes=2, per_class=2, size=(160, 90), seed=2, workers=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files and all(_digest(a / f) == _digest(b / f) for f in files)
    assert any(_digest(a / f) != _digest(c / f) for f in files)


def test_styles_differ_in_at_least_two_cues():
    styles = S.class_styles(40, seed=0)
    for i, a in enumerate(styles):
        for b in styles[:i]:
            assert sum(a[k] != b[k] for k in S.CUES) >= 2


def test_class_names_are_reference_countries_and_extend():
    assert set(S.class_names(10)) <= set(S.REFERENCE_COUNTRIES)
    assert len(set(S.class_names(90))) == 90
    with pytest.raises(ConfigError):
        S.class_names(1)


def test_classes_look_different():
    # The mean colour of two classes' images differs more than two images of one class.
    styles = S.class_styles(2, seed=0)
    same = [np.asarray(S.draw_scene(styles[0], (160, 90), s), float).mean((0, 1)) for s in range(8)]
    other = [np.asarray(S.draw_scene(styles[1], (160, 90), s), float).mean((0, 1)) for s in range(8)]
    within = np.abs(np.mean(same, 0) - np.mean(same[:4], 0)).sum()
    between = np.abs(np.mean(same, 0) - np.mean(other, 0)).sum()
    assert between > within


def test_clue_scale_draws_the_small_clues_smaller():
    # a class with signs and bollards: their pixels differ, the scene around them does not
    style = next(s for s in S.class_styles(16, 0) if s["sign"] and s["bollard"])

    def draw(**options):
        return np.asarray(S.draw_scene(style, (480, 270), seed=3, spread=True, **options),
                          np.int16)

    big, small = draw(), draw(clue_scale=0.5)
    assert np.array_equal(big, draw())  # repeatable
    changed = np.abs(big - small).sum(axis=2) > 60
    assert 0 < changed.mean() < 0.2
    with pytest.raises(ConfigError, match="--clue-scale"):
        S.synth("unused", clue_scale=0.01)
