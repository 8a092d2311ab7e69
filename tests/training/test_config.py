import pytest
import yaml

from geoconvnet.training.config import TrainConfig, resolve_config, save_config
from geoconvnet.utils.errors import ConfigError


def test_defaults_are_the_reference_recipe():
    cfg = TrainConfig()
    assert (cfg.lr, cfg.head_lr_mult, cfg.weight_decay, cfg.step_size, cfg.gamma) == \
        (5.27e-5, 10.0, 2.0e-6, 5, 0.815)
    assert (cfg.dropout, cfg.batch_size, cfg.epochs, cfg.patience) == (0.4, 64, 25, 3)
    pp = cfg.preprocessing()
    assert (pp.crop_size, pp.image_size, pp.hflip, pp.train_view) == (448, 224, True, "crop")


def test_training_views_resolve_their_own_defaults():
    full = TrainConfig(train_view="full").preprocessing()
    assert (full.full_width, full.hflip, full.eval_view) == (448, False, "full")
    grid = TrainConfig(train_view="grid", hflip=True).preprocessing()
    assert (grid.hflip, grid.eval_view) == (True, "grid")
    assert TrainConfig(eval_view="grid").preprocessing().eval_view == "grid"
    clip = TrainConfig().preprocessing(input_size=336, interpolation="bicubic")
    assert (clip.image_size, clip.interpolation) == (336, "bicubic")


def test_precedence_defaults_yaml_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-4\nepochs: 7\nbatch-size: 16\nhflip: false\n")
    cfg = resolve_config(path, epochs=9, lr=None)
    assert cfg.lr == 1e-4  # YAML reads 1e-4 as a string: coerced to float
    assert cfg.epochs == 9  # the flag wins
    assert cfg.batch_size == 16 and cfg.hflip is False
    assert cfg.arch == "resnet50"  # untouched default


def test_unknown_and_invalid_options_are_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown option.*learning_rate"):
        resolve_config(path)
    with pytest.raises(ConfigError, match="cannot read 'many' as int"):
        resolve_config(epochs="many")
    with pytest.raises(ConfigError, match="scheduler 'linear'"):
        resolve_config(scheduler="linear")
    with pytest.raises(ConfigError, match="not found"):
        resolve_config(tmp_path / "missing.yaml")


def test_saved_config_reloads_identically(tmp_path):
    cfg = resolve_config(arch="resnet18", lr=3e-4, eval_view="grid")
    save_config(cfg, tmp_path / "config.yaml")
    assert resolve_config(tmp_path / "config.yaml") == cfg
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["arch"] == "resnet18"
