"""What the app does with a screenshot, without the web: the model's guesses, the GeoGuessr
pin and heat maps. :mod:`.server` only moves bytes between HTTP and these methods.

A model with a location head (geocells) gets its pin from the cells (the country pin kept
beside it for comparison) and its likely cells listed for the map, each with a radius that
covers most of its training places.

Everything goes through the inference core (:func:`~geoconvnet.inference.core.infer`), so a
screenshot gets the same eval transform, view and temperature as in ``predict``. Heat maps
cost about ten forward passes each on a CPU, so they are made on demand, one guess at a
time, for a screenshot sent again with the guess's name: no request depends on an earlier
one, so any worker process can answer it. The last :attr:`Service.keep` maps are kept.
"""

from __future__ import annotations

import copy
import hashlib
import io
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.countries import display_name, iso3, split_camel
from ..data.images import decode_image
from ..inference.core import infer
from ..inference.explain import explain
from ..data.geo import GeoCells, haversine_km
from ..inference.pin import Land, advise_model
from ..models.heads import GEOCELL
from ..models.load import load_model
from ..models.onnx import OnnxNet
from ..utils.device import resolve_device
from ..utils.errors import ConfigError, DataError, GeoconvnetError

HEAT_MAP_WIDTH = 1280  # overlays wider than this are scaled down (a page shows ~800 px)
# Grad-CAM keeps every activation for the backward pass: a 3000x3000 image took 2 GB for a
# ResNet-18. Larger screenshots are shrunk to this many pixels (the reference's 1600x900)
# before it, and the map is drawn over the shrunk one (the page shows it smaller anyway).
HEAT_MAP_PIXELS = 1600 * 900
APP_MAX_PIXELS = 16_000_000  # a 5K screenshot (5120x2880) is 14.7 million
MAX_ASPECT = 8  # a screenshot is at most 32:9 (3.6); a 1x40,000,000 strip is not one
MIN_SIDE = 64  # pixels; an icon or a 1x1 tracking pixel is no screenshot to guess from
# The likely cells drawn on the map: those this likely (the top one always), at most this many.
CELL_MIN_PROBABILITY, CELL_MAX = 0.01, 32
# A cell's drawn radius: this quantile of its places' distances from its centre (robust to
# a stray place), and at least this many km (a cell of one place, a city's cell).
CELL_RADIUS_QUANTILE, CELL_MIN_RADIUS_KM = 0.8, 10.0


class UnknownClassError(GeoconvnetError):
    """A heat map asked for a class the model does not have."""


class HeatMapsUnavailableError(ConfigError):
    """Heat maps asked of a model without gradients (ONNX)."""


class Service:
    """One loaded model (checkpoint, run folder or ``.onnx``) and its recent heat maps."""

    def __init__(self, model_path: str | Path, device: str | None = None, top_k: int = 5,
                 max_pixels: int = APP_MAX_PIXELS, keep: int = 64):
        self.device = resolve_device(device)
        self.model = load_model(model_path, self.device)
        self.name = Path(model_path).name  # never the full path: it says nothing to a client
        self.top_k = max(1, min(top_k, len(self.model.class_names)))
        self.max_pixels, self.keep = max_pixels, keep
        self.codes = {name: iso3(name) for name in self.model.class_names}
        # How a player writes them: "South Africa" for the class SouthAfrica.
        self.names = {name: display_name(code) if code else split_camel(name)
                      for name, code in self.codes.items()}
        self.land = Land() if all(self.codes.values()) else None
        self.cells: GeoCells | None = self.model.geocells  # the location head's, or None
        self.cell_radii = cell_radii_km(self.cells) if self.cells is not None else None
        self._heat_maps: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()
        # Grad-CAM hooks into the network it explains: a copy of its own, used one call at a
        # time, keeps predictions running in other threads out of them (serve --threads).
        self._cam_model = None
        self._cam_lock = threading.Lock()

    @property
    def can_explain(self) -> bool:
        return not isinstance(self.model.net, OnnxNet)

    def warm_up(self) -> float:
        """One prediction on a blank screenshot and the land samples of every class (the
        country pin, also shown beside a location head's), so the first requests are as fast
        as the others; returns the seconds it took. The cells and their radii are read when
        the service is made, and the blank screenshot's prediction runs the cell pin."""
        start = time.perf_counter()
        buffer = io.BytesIO()
        Image.new("RGB", (320, 180), (128, 128, 128)).save(buffer, format="PNG")
        self.analyse(buffer.getvalue(), "warm-up.png")
        for name in self.model.class_names if self.land is not None else ():
            self.land.points(name)
        return time.perf_counter() - start

    def info(self) -> dict:
        """What ``GET /api/model`` says: enough for a client to check and label results."""
        meta = self.model.meta
        return {"name": self.name, "arch": meta["arch"],
                "format": "onnx" if not self.can_explain else "pytorch",
                "pool": meta.get("pool", "avg"), "view_pool": meta.get("view_pool", "mean"),
                "class_names": self.model.class_names, "codes": self.codes,
                "names": self.names,
                "preprocessing": meta["preprocessing"], "temperature": self.model.temperature,
                "calibrated": "temperature" in meta, "metrics": meta.get("metrics", {}),
                "geoconvnet_version": meta.get("geoconvnet_version"),
                "heat_maps": self.can_explain,
                "pin": self.land is not None or self.cells is not None,
                "location_head": None if self.cells is None else {"cells": len(self.cells)},
                "device": str(self.device)}

    def analyse(self, data: bytes, filename: str) -> dict:
        """Guesses for one uploaded file: the top-k, every class's probability, the pin (from
        the location head when the model has one) and the likely cells (None without a
        location head); raises DataError (ImageTooLargeError for too many pixels) naming
        ``filename``."""
        started = time.perf_counter()
        image = self._decode(data, filename)
        run = infer(self.model, [image], device=self.device, num_workers=0, progress=False)
        probs = run.probs[0].tolist()
        ranking = sorted(range(len(probs)), key=lambda c: -probs[c])
        cell_probs = run.head_probs(GEOCELL) if self.cells is not None else None
        cell_probs = cell_probs[0].numpy().astype(float) if cell_probs is not None else None
        predicted = time.perf_counter()
        result = {
            "image": {"filename": filename, "width": image.width, "height": image.height},
            "view": run.view, "calibrated": "temperature" in self.model.meta,
            "top": [self._guess(c, probs[c]) for c in ranking[:self.top_k]],
            "probabilities": [self._guess(c, probs[c]) for c in ranking],
            "pin": self._pin(dict(zip(self.model.class_names, probs)), cell_probs),
            "cells": self._likely_cells(cell_probs) if cell_probs is not None else None,
        }
        result["timings_ms"] = {"predict": round(1000 * (predicted - started), 1),
                                "pin": round(1000 * (time.perf_counter() - predicted), 1)}
        return result

    def heat_map(self, data: bytes, filename: str, country: str) -> bytes:
        """A JPEG of the screenshot with the Grad-CAM map of ``country`` (a class name)."""
        if not self.can_explain:
            raise HeatMapsUnavailableError("heat maps need the PyTorch checkpoint (an ONNX "
                                           "model has no gradients): serve the run folder")
        if country not in self.model.class_names:
            raise UnknownClassError(f"{country!r} is not one of the model's classes (see "
                                    "/api/model)")
        cls = self.model.class_names.index(country)
        key = (hashlib.sha256(data).hexdigest(), cls)
        if (kept := self._kept(key)) is not None:
            return kept
        image = _at_most(self._decode(data, filename), HEAT_MAP_PIXELS)
        with self._cam_lock:
            if (kept := self._kept(key)) is not None:  # made while this one waited
                return kept
            if self._cam_model is None:
                self._cam_model = copy.deepcopy(self.model)
            [explanation] = explain(self._cam_model, image, [cls])
            jpeg = _jpeg(explanation.overlay(image))
            with self._lock:
                self._heat_maps[key] = jpeg
                while len(self._heat_maps) > self.keep:
                    self._heat_maps.popitem(last=False)
        return jpeg

    def _kept(self, key: tuple[str, int]) -> bytes | None:
        with self._lock:
            if key in self._heat_maps:
                self._heat_maps.move_to_end(key)
                return self._heat_maps[key]
        return None

    def _decode(self, data: bytes, filename: str) -> Image.Image:
        image = decode_image(data, filename, self.max_pixels)
        if min(image.size) < MIN_SIDE:
            raise DataError(f"{filename}: {image.width}x{image.height} is too small to be a "
                            f"screenshot (at least {MIN_SIDE} pixels a side); send the whole "
                            "screenshot")
        if max(image.size) > MAX_ASPECT * min(image.size):
            raise DataError(f"{filename}: {image.width}x{image.height} is not a screenshot "
                            f"(sides more than {MAX_ASPECT}:1); send the whole screenshot")
        return image

    def _guess(self, cls: int, probability: float) -> dict:
        name = self.model.class_names[cls]
        return {"country": name, "name": self.names[name], "code": self.codes[name],
                "probability": round(probability, 6)}

    def _pin(self, probabilities: dict[str, float], cell_probs: np.ndarray | None) -> dict | None:
        """The pins: from the location head when the model has one (with the country pin
        beside it when the classes are countries), else from the countries."""
        if self.land is None and self.cells is None:  # classes that are not all countries
            return None
        advice = advise_model(probabilities, cell_probs, self.cells, self.land)
        return {"suggested": _pin_dict(advice.suggested), "naive": _pin_dict(advice.naive),
                "source": advice.source,
                "country": _pin_dict(advice.country) if advice.country is not None else None}

    def _likely_cells(self, probs: np.ndarray) -> list[dict]:
        """The cells to shade on the map, most likely first: those with a probability of at
        least :data:`CELL_MIN_PROBABILITY` (the most likely one always), at most
        :data:`CELL_MAX`."""
        order = np.argsort(-np.nan_to_num(probs, nan=-np.inf), kind="stable")[:CELL_MAX]
        chosen = order[:1].tolist() + [int(c) for c in order[1:]
                                       if probs[c] >= CELL_MIN_PROBABILITY]
        return [{"lat": round(float(self.cells.centres[c, 0]), 4),
                 "lon": round(float(self.cells.centres[c, 1]), 4),
                 "probability": round(float(probs[c]), 6), "country": self.cells.countries[c],
                 "radius_km": round(float(self.cell_radii[c]), 1)} for c in chosen]


def cell_radii_km(cells: GeoCells) -> np.ndarray:
    """[C] how far each cell reaches: the :data:`CELL_RADIUS_QUANTILE` quantile of its
    places' distances from its centre, at least :data:`CELL_MIN_RADIUS_KM`."""
    radii = np.full(len(cells), CELL_MIN_RADIUS_KM)
    for c, places in enumerate(cells.places):
        places = places[np.isfinite(places).all(axis=1)]
        if len(places):
            far = haversine_km(cells.centres[c, 0], cells.centres[c, 1], places[:, 0],
                               places[:, 1])
            radii[c] = max(CELL_MIN_RADIUS_KM, float(np.quantile(far, CELL_RADIUS_QUANTILE)))
    return radii


def _pin_dict(pin) -> dict:
    return {"lat": round(pin.lat, 4), "lon": round(pin.lon, 4),
            "expected_score": round(pin.expected_score, 1)}


def _at_most(image: Image.Image, pixels: int) -> Image.Image:
    """``image`` shrunk, its aspect kept, to at most ``pixels`` pixels."""
    if image.width * image.height <= pixels:
        return image
    ratio = (pixels / (image.width * image.height)) ** 0.5
    return image.resize((max(1, int(image.width * ratio)), max(1, int(image.height * ratio))),
                        Image.BILINEAR)


def _jpeg(image: Image.Image) -> bytes:
    if image.width > HEAT_MAP_WIDTH:
        image = image.resize((HEAT_MAP_WIDTH, round(image.height * HEAT_MAP_WIDTH / image.width)),
                             Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
