"""geoconvnet: guess the country of a street-view screenshot.

The main functions are importable from here (``from geoconvnet import train, predict``);
they load on first use, so ``import geoconvnet`` stays instant.
"""

import importlib

__version__ = "0.1.0"

from .utils.errors import GeoconvnetError  # noqa: E402

# name -> module that defines it (imported on first access: PEP 562)
_API = {"synth": "geoconvnet.data.synth", "prepare": "geoconvnet.data.cache",
        "train": "geoconvnet.training.train", "tune": "geoconvnet.training.tune",
        "calibrate": "geoconvnet.training.calibrate", "evaluate": "geoconvnet.inference.evaluate",
        "predict": "geoconvnet.inference.predict", "load_checkpoint": "geoconvnet.models.checkpoint"}

__all__ = ["GeoconvnetError", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'geoconvnet' has no attribute {name!r}")
