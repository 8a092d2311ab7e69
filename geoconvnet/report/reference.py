"""The reference project's published results (its per-epoch test curves and per-country
classification reports), shipped as CSV in ``geoconvnet/resources``."""

from __future__ import annotations

import csv
import io
from importlib import resources

from ..utils.errors import GeoconvnetError

REFERENCE_ARCHS = ("resnet34", "resnet50", "resnet101", "resnet152")
REFERENCE_SOURCE = "reference (GeoGuessrConvNet, test set)"


def reference_epochs(arch: str) -> list[dict]:
    return _reference_csv(f"{arch}_epochs.csv")


def reference_f1(arch: str) -> dict[str, float]:
    if arch not in REFERENCE_ARCHS:
        return {}
    return {row[""]: float(row["f1-score"]) for row in _reference_csv(f"{arch}_classification_report.csv")
            if row[""] and row[""][0].isupper()}


def _reference_csv(name: str) -> list[dict]:
    path = resources.files("geoconvnet.resources").joinpath(name)
    if not path.is_file():
        raise GeoconvnetError(f"no reference results named {name!r}; available: "
                              f"{', '.join(REFERENCE_ARCHS)}")
    return list(csv.DictReader(io.StringIO(path.read_text())))
