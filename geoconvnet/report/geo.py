"""The report's "Where" section: how far the pins land, from ``geo_predictions.csv`` alone.

``evaluate`` writes that file beside ``predictions.csv`` when the evaluated split has
coordinates: per image the true place (``lat``, ``lon``) and, for each pin kind it computed,
``<kind>_lat``, ``<kind>_lon`` and ``<kind>_km`` (see :mod:`geoconvnet.inference.geoeval`).
From it: a distance CDF per kind, the median km per country (with the location head's gain
over the country pin), and a map of a seeded sample of errors. The summary numbers come from
``metrics.json``'s ``"geo"`` when it has them (else from the CSV). No model, no images.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

from ..data.countries import shapes_for_map
from ..data.geo import WITHIN_KM, distance_summary, haversine_km
from ..utils.io import write_csv
from . import plots

GEO_PREDICTIONS = "geo_predictions.csv"
# The kinds evaluate writes, in the order shown; a kind not listed here is shown after them
# under its own name.
KIND_LABELS = {"pin": "location head", "pin_knn": "location head + kNN",
               "country_pin": "country pin"}
HEAD, COUNTRY = "pin", "country_pin"
TABLE_WITHIN = ("25", "200", "750", "2500")  # the thresholds of the summary table
MAP_SAMPLE = 150
OUTPUTS = ("distance_cdf.png", "km_by_country.png", "error_map.png", "geo_by_country.csv")


PIN_PHRASES = {"pin": "the location head's pin", "pin_knn": "the kNN-refined pin",
               "country_pin": "the country pin"}


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def pin_phrase(kind: str) -> str:
    """How a sentence names a kind's pin: "a line to the location head's pin"."""
    return PIN_PHRASES.get(kind, f"the {kind} pin")


def format_km(km) -> str:
    """``"3.2 km"`` below 10 km, ``"1,234 km"`` above; ``"–"`` when unknown."""
    if km is None or not math.isfinite(km):
        return "–"
    return f"{km:.1f} km" if abs(km) < 10 else f"{km:,.0f} km"


def format_score(score) -> str:
    return "–" if score is None or not math.isfinite(score) else f"{score:,.0f}"


def format_share(share) -> str:
    return "–" if share is None or not math.isfinite(share) else f"{share * 100:.1f}%"


@dataclass
class GeoPredictions:
    """The rows of ``geo_predictions.csv`` as arrays (NaN where a value is missing)."""

    paths: list[str]
    truth: list[str]  # the true country (class name) per image
    places: np.ndarray  # [n, 2] true (lat, lon)
    pins: dict[str, np.ndarray] = field(default_factory=dict)  # kind -> [n, 2]
    km: dict[str, np.ndarray] = field(default_factory=dict)  # kind -> [n]

    @property
    def kinds(self) -> list[str]:
        return list(self.pins)

    def __len__(self) -> int:
        return len(self.paths)


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def read_geo_predictions(path: str | Path) -> GeoPredictions:
    """Parse ``geo_predictions.csv``; the pin kinds are found from its ``<kind>_km``
    columns (a kind whose ``_lat``/``_lon`` are missing is left out)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        rows = list(reader)
    found = [c[:-3] for c in header if c.endswith("_km")
             and f"{c[:-3]}_lat" in header and f"{c[:-3]}_lon" in header]
    kinds = [k for k in KIND_LABELS if k in found] + [k for k in found if k not in KIND_LABELS]
    places = np.array([[_number(r.get("lat")), _number(r.get("lon"))] for r in rows],
                      dtype=float).reshape(-1, 2)
    data = GeoPredictions([r.get("path", "") for r in rows], [r.get("truth", "") for r in rows],
                          places)
    for kind in kinds:
        pin = np.array([[_number(r[f"{kind}_lat"]), _number(r[f"{kind}_lon"])] for r in rows],
                       dtype=float).reshape(-1, 2)
        km = np.array([_number(r[f"{kind}_km"]) for r in rows], dtype=float)
        missing = ~np.isfinite(km)  # a distance left blank: from the places, when known
        if missing.any():
            km[missing] = haversine_km(places[missing, 0], places[missing, 1],
                                       pin[missing, 0], pin[missing, 1])
        data.pins[kind], data.km[kind] = pin, km
    return data


def summaries(data: GeoPredictions, metrics: dict) -> dict[str, dict]:
    """Per kind: ``metrics.json``'s ``geo`` summary where it has one (what ``evaluate``
    measured at full precision), else the CSV's distances summed up the same way."""
    given = metrics.get("geo") or {}
    kinds = data.kinds + [k for k in given if k not in data.kinds]
    return {k: given.get(k) or distance_summary(data.km.get(k, [])) for k in kinds}


def _median(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None


def country_medians(data: GeoPredictions) -> list[dict]:
    """One row per true country: ``country``, ``n`` (images), ``<kind>_median_km`` per kind
    and, with both, ``gain_km`` = the country pin's median minus the location head's
    (positive: the head lands closer). Sorted by the country pin's median (nearest
    first; without a country pin, the first kind's), unknown medians last."""
    rows = []
    truth = np.asarray(data.truth, dtype=object)
    for country in sorted(set(data.truth)):
        mask = truth == country
        row = {"country": country, "n": int(mask.sum())}
        for kind in data.kinds:
            row[f"{kind}_median_km"] = _median(data.km[kind][mask])
        head, base = row.get(f"{HEAD}_median_km"), row.get(f"{COUNTRY}_median_km")
        if HEAD in data.km and COUNTRY in data.km:
            row["gain_km"] = base - head if head is not None and base is not None else None
        rows.append(row)
    key = f"{COUNTRY if COUNTRY in data.km else (data.kinds or [''])[0]}_median_km"
    rows.sort(key=lambda r: (r.get(key) is None, r.get(key) or 0.0, r["country"]))
    return rows


def map_kind(data: GeoPredictions) -> str | None:
    """The pin the error map shows: the location head's, else the country pin, else any
    (the first with a place to show); None when no image has both a true place and a pin."""
    known = np.isfinite(data.places).all(axis=1)
    for kind in (HEAD, COUNTRY, *data.kinds):
        if kind in data.pins and (known & np.isfinite(data.pins[kind]).all(axis=1)).any():
            return kind
    return None


def error_sample(data: GeoPredictions, kind: str, size: int = MAP_SAMPLE,
                 seed: int = 0) -> np.ndarray:
    """Indices of at most ``size`` images with a true place and a ``kind`` pin, drawn with
    ``seed`` (the same sample each time the report is made)."""
    known = np.isfinite(data.places).all(axis=1) & np.isfinite(data.pins[kind]).all(axis=1)
    candidates = np.flatnonzero(known).tolist()
    chosen = random.Random(seed).sample(candidates, min(size, len(candidates)))
    return np.array(sorted(chosen), dtype=int)


@dataclass
class Where:
    """What the section shows: the figures, the tables and how the map's sample was drawn."""

    kinds: list[str]
    summary: dict[str, dict]
    countries: list[dict]
    figures: dict[str, Path]
    images: int
    map_kind: str | None = None
    map_sample: int = 0
    from_metrics: bool = False


def where(eval_dir: Path, metrics: dict, out: Path, seed: int = 0,
          sample: int = MAP_SAMPLE) -> Where | None:
    """Figures and tables of the section into ``out``; None without ``geo_predictions.csv``
    (an eval folder of a split without coordinates: nothing to show)."""
    path = Path(eval_dir) / GEO_PREDICTIONS
    if not path.is_file():
        for name in OUTPUTS:  # from an earlier report: not for this evaluation
            (out / name).unlink(missing_ok=True)
        return None
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    data = read_geo_predictions(path)
    summary = summaries(data, metrics)
    countries = country_medians(data)
    columns = ["country", "n"] + [f"{k}_median_km" for k in data.kinds] + \
        (["gain_km"] if countries and "gain_km" in countries[0] else [])
    write_csv(out / "geo_by_country.csv", columns,
              [{c: ("" if r.get(c) is None else r[c]) for c in columns} for r in countries])
    labels = {k: kind_label(k) for k in data.kinds}
    figures: dict[str, Path] = {}
    if not data.kinds or not len(data):
        return Where(data.kinds, summary, countries, figures, len(data),
                     from_metrics=bool(metrics.get("geo")))
    legend = {k: f"{labels[k]}: median {format_km(_median(data.km[k]))}, GeoScore "
                 f"{format_score(distance_summary(data.km[k])['geoscore'])}"
              for k in data.kinds}
    figures["distance_cdf"] = plots.distance_cdf(
        {legend[k]: data.km[k] for k in data.kinds}, WITHIN_KM, out / "distance_cdf.png")
    figures["km_by_country"] = plots.km_bars(
        [r["country"] for r in countries],
        {labels[k]: [r[f"{k}_median_km"] for r in countries] for k in data.kinds},
        out / "km_by_country.png")
    kind = map_kind(data)
    chosen = error_sample(data, kind, sample, seed) if kind else np.zeros(0, dtype=int)
    if len(chosen):
        figures["error_map"] = plots.error_map(
            shapes_for_map(), data.places[chosen], data.pins[kind][chosen],
            data.km[kind][chosen], out / "error_map.png",
            f"{len(chosen)} of {len(data)} images: true place (dot) to {pin_phrase(kind)} (x)")
    return Where(data.kinds, summary, countries, figures, len(data), kind, len(chosen),
                 bool(metrics.get("geo")))


SECTION = """\
<section id="where">
  <h2>Where</h2>
  <p class="note">How far the pins land from where the {{ images }} test images with known coordinates were taken: {% for k in kinds %}<b>{{ label(k) }}</b>{% if k == "pin" %} (the point of highest expected GeoGuessr score under the location head's cells){% elif k == "pin_knn" %} (the location head's pin refined by the nearest training images){% elif k == "country_pin" %} (the best point from the country probabilities, spread over each country's land){% endif %}{{ ", " if not loop.last else "." }}{% endfor %} GeoScore is the mean of GeoGuessr's 5000·exp(−d / 1492.7 km).</p>
  <table id="geo-summary" style="white-space: nowrap">
    <thead><tr><th>pin</th><th>images</th><th>median</th><th>mean</th><th>GeoScore</th>{% for t in within %}<th>≤ {{ "{:,}".format(t|int) }} km</th>{% endfor %}</tr></thead>
    <tbody>
    {% for k, s in summary.items() %}<tr><td>{{ label(k) }}</td><td>{{ s.n }}</td><td>{{ km(s.median_km) }}</td><td>{{ km(s.mean_km) }}</td><td>{{ score(s.geoscore) }}</td>{% for t in within %}<td>{{ share((s.within or {}).get(t)) }}</td>{% endfor %}</tr>
    {% endfor %}
    </tbody>
  </table>
  <p class="note">{% if from_metrics %}From <code>metrics.json</code>; the figures below from <code>geo_predictions.csv</code>.{% else %}From <code>geo_predictions.csv</code>.{% endif %}</p>
  {% if "distance_cdf" in fig %}
  <figure><img src="{{ fig.distance_cdf }}" alt="Share of images whose pin is within a distance of the true place, one curve per pin kind, log distance axis from 1 to 20,000 km"><figcaption>Share of images within d km of the true place, per pin (dotted guides: 1, 25, 200, 750 and 2,500 km).</figcaption></figure>
  {% endif %}
  <h3>By country</h3>
  <p class="note">Median distance of each country's images{% if has_gain %}; <b>gain</b>: how much closer the location head's median is than the country pin's{% endif %}. Sorted by the {{ label(sort_kind) }}'s median, nearest first.</p>
  <div class="cols">
    <div class="scroll">
      <table id="geo-country-table" style="white-space: nowrap">
        <thead><tr><th>country</th><th>images</th>{% for k in kinds %}<th>{{ label(k) }} median</th>{% endfor %}{% if has_gain %}<th>gain</th>{% endif %}</tr></thead>
        <tbody>
        {% for r in countries %}<tr><td>{{ r.country }}</td><td>{{ r.n }}</td>{% for k in kinds %}<td>{{ km(r[k ~ "_median_km"]) }}</td>{% endfor %}{% if has_gain %}<td{% if r.gain_km is not none %} class="{{ 'good' if r.gain_km > 0 else 'bad' if r.gain_km < 0 else '' }}"{% endif %}>{{ km(r.gain_km) }}</td>{% endif %}</tr>
        {% endfor %}
        </tbody>
      </table>
    </div>
    {% if "km_by_country" in fig %}<figure><img src="{{ fig.km_by_country }}" alt="Median distance in km per country, one bar per pin kind"><figcaption>Median km per country (log scale).</figcaption></figure>{% endif %}
  </div>
  {% if "error_map" in fig %}
  <h3>A sample of errors</h3>
  <figure><img src="{{ fig.error_map }}" alt="World map: {{ map_sample }} sampled images, a dot at each true place and a line to {{ phrase(map_kind) }}, coloured by distance"><figcaption>{{ map_sample }} of {{ images }} images drawn at random (seeded: the same each time): a line from the true place (dot) to {{ phrase(map_kind) }} (×), coloured by how far it landed.</figcaption></figure>
  {% endif %}
</section>
"""


def render_section(where: Where, figures: dict[str, str]) -> str:
    """The section's HTML; ``figures`` maps the figure keys to their data URIs."""
    template = jinja2.Environment(autoescape=True).from_string(SECTION)
    sort_kind = COUNTRY if COUNTRY in where.kinds else (where.kinds or [COUNTRY])[0]
    return template.render(
        images=where.images, kinds=where.kinds, summary=where.summary,
        countries=where.countries, within=TABLE_WITHIN, fig=figures, from_metrics=where.from_metrics,
        has_gain=bool(where.countries) and "gain_km" in where.countries[0],
        sort_kind=sort_kind, map_kind=where.map_kind, map_sample=where.map_sample,
        label=kind_label, phrase=pin_phrase, km=format_km, score=format_score, share=format_share)


def insert_section(page: str, section: str) -> str:
    """The page with ``section`` after the world map (before the predictions), or at the end
    of ``<main>`` in a page without them."""
    for anchor in ('<section id="predictions">', "</main>"):
        if anchor in page:
            return page.replace(anchor, section + anchor, 1)
    return page + section
