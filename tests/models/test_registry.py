import pytest
import torch
from safetensors.torch import save_file

from geoconvnet.models.registry import REGISTRY, build_model
from geoconvnet.utils.errors import CheckpointError, ConfigError, WeightsUnavailableError


@pytest.mark.parametrize("arch, size", [("resnet18", 64), ("efficientnet_b0", 64),
                                        ("vit_b_16", 224), ("timm:resnet10t", 64)])
def test_builders_produce_logits_for_each_class(arch, size):
    model = build_model(arch, num_classes=7, weights="none").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 7)


def test_registry_names():
    expected = {f"resnet{d}" for d in (18, 34, 50, 101, 152)} | \
        {f"efficientnet_b{i}" for i in range(3)} | {"vit_b_16"}
    assert set(REGISTRY) == expected


def test_head_is_dropout_then_xavier_linear():
    torch.manual_seed(0)
    model = build_model("resnet18", 85, dropout=0.4)
    dropout, linear = model.head
    assert isinstance(dropout, torch.nn.Dropout) and dropout.p == 0.4
    assert linear.in_features == 512 and linear.out_features == 85
    bound = (6 / (512 + 85)) ** 0.5  # xavier_uniform limit
    assert linear.weight.abs().max() <= bound and linear.weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(linear.bias) == 0


def test_head_learning_rate_multiplier():
    groups = build_model("resnet18", 3).param_groups(lr=1e-4, head_lr_mult=10, weight_decay=0.1)
    assert [g["lr"] for g in groups] == [1e-4, 1e-3]
    assert sum(p.numel() for g in groups for p in g["params"]) == \
        sum(p.numel() for p in build_model("resnet18", 3).parameters())


def test_unknown_architectures():
    with pytest.raises(ConfigError, match="unknown architecture 'resnet19'"):
        build_model("resnet19", 3)
    with pytest.raises(ConfigError, match="unknown timm model"):
        build_model("timm:not_a_model_xyz", 3)


def test_weights_from_a_local_file(tmp_path):
    source = build_model("resnet18", 3)
    state = {k: v for k, v in source.backbone.state_dict().items()}
    torch.save(state, tmp_path / "backbone.pth")  # tensors only, like torchvision's files
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "backbone.safetensors"))
    for name in ("backbone.pth", "backbone.safetensors"):
        model = build_model("resnet18", 5, weights=str(tmp_path / name))
        assert torch.equal(model.backbone.conv1.weight, source.backbone.conv1.weight)


def test_weights_for_another_architecture_are_rejected(tmp_path):
    save_file({"foo.weight": torch.zeros(3)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(CheckpointError, match="none of its 1 tensors match"):
        build_model("resnet18", 3, weights=str(tmp_path / "w.safetensors"))
    with pytest.raises(WeightsUnavailableError, match="no such file"):
        build_model("resnet18", 3, weights=str(tmp_path / "missing.pth"))


def test_imagenet_weights_download_or_clear_error(tmp_path, monkeypatch):
    """Uses the library's real download path: offline it must fail with a useful message,
    online it must load real weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    try:
        model = build_model("resnet18", 3, weights="imagenet")
    except WeightsUnavailableError as exc:
        assert "could not download ImageNet weights for resnet18" in str(exc)
        assert "--weights none" in str(exc) and "--weights PATH" in str(exc)
    else:
        assert model.backbone.conv1.weight.std() > 0.05  # pretrained, not a fresh init


def test_fixed_size_models_reject_other_sizes_and_the_full_view():
    from geoconvnet.models.registry import check_input_size

    vit = build_model("vit_b_16", 3)
    check_input_size(vit, "vit_b_16", 224, "grid")
    with pytest.raises(ConfigError, match="--image-size 224"):
        check_input_size(vit, "vit_b_16", 112, "center")
    with pytest.raises(ConfigError, match="'full' view"):
        check_input_size(vit, "vit_b_16", 224, "full")
    check_input_size(build_model("resnet18", 3), "resnet18", 112, "full")  # any size is fine
