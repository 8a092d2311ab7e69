"""Why the model guessed a country: Grad-CAM heat maps (pytorch-grad-cam) over the whole
screenshot, one per guess.

The map is computed on the ``full`` eval view (the whole image at the training scale; a
CNN takes any size), so it covers the screenshot, not only the centre crop, and is drawn
over the original image. Needs the PyTorch checkpoint: an ONNX model has no gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from ..data.transforms import eval_transform, normalize
from ..models.checkpoint import LoadedModel
from ..models.onnx import OnnxNet
from ..models.registry import cam_layer
from ..utils.errors import ConfigError
from ..utils.io import atomic_write


@dataclass
class Explanation:
    country: str
    heat: np.ndarray  # [H, W] in 0..1, the size of the image

    def overlay(self, image: Image.Image, alpha: float = 0.45) -> Image.Image:
        """The image with the heat map drawn over it (jet colours, warm = decisive)."""
        colours = (colormaps["jet"](self.heat)[..., :3] * 255).astype(np.uint8)
        return Image.blend(image.convert("RGB"), Image.fromarray(colours), alpha)


def explain(model: LoadedModel, image: Image.Image, classes: list[int]) -> list[Explanation]:
    """A heat map for each class index in ``classes`` (e.g. the top guesses)."""
    if isinstance(model.net, OnnxNet):
        raise ConfigError("heat maps need the PyTorch checkpoint (an ONNX model has no "
                          "gradients): pass the run folder or .safetensors file")
    pp = model.preprocessing
    views = eval_transform(pp, "full")(image)  # uint8 [1, 3, h, w]
    inputs = normalize(views, pp).to(next(model.net.parameters()).device)
    was_training = model.net.training
    model.net.eval()
    try:
        with GradCAM(model=model.net, target_layers=[cam_layer(model.net)]) as cam:
            maps = [cam(input_tensor=inputs, targets=[ClassifierOutputTarget(c)])[0]
                    for c in classes]
    finally:
        model.net.train(was_training)
    return [Explanation(model.class_names[c], _resize(m, image.size)) for c, m in
            zip(classes, maps)]


def _resize(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    resized = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize(
        size, Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255


def write_overlays(model: LoadedModel, image: Image.Image, classes: list[int], out_dir: Path,
                   stem: str) -> list[Path]:
    """``OUT_DIR/<stem>-<rank>-<country>.png`` for each class, in the order given."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for rank, explanation in enumerate(explain(model, image, classes), start=1):
        path = out_dir / f"{stem}-{rank}-{explanation.country}.png"
        with atomic_write(path, "wb") as f:
            explanation.overlay(image).save(f, format="PNG")
        written.append(path)
    return written
