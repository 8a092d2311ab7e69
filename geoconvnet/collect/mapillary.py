"""Mapillary API v4: images inside the country, spread over it (small boxes around random
places, at most ``per_cell`` images in each 0.25-degree cell), the 2048-pixel thumbnail
(the largest fixed-size one; ``thumb_original_url`` would be the whole, often 360-degree,
image), with creator and licence (Mapillary images are CC BY-SA 4.0) recorded for attribution.

Needs the user's client token (``--token`` or ``MAPILLARY_TOKEN``), sent in the
Authorization header, never in a URL. See https://www.mapillary.com/developer/api-documentation
"""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import datetime, timezone
from typing import Iterator

from ..data.countries import Country
from ..data.places import Places
from .collector import Capture, Skipped
from .http import Client, CollectError, Refused, Unusable

API_URL = "https://graph.mapillary.com"
LICENCE = "CC BY-SA 4.0"
FIELDS = "id,thumb_2048_url,computed_geometry,geometry,captured_at,compass_angle,creator"
CELL_DEG = 0.25
# A signed thumbnail link that expired answers 403, now and then; every download refused in
# a row is something else (the host blocks this machine, the API changed): say so.
REFUSED_IN_A_ROW = 10


class Mapillary:
    name = "mapillary"

    def __init__(self, token: str, api_url: str = API_URL, box_deg: float = 0.02,
                 per_cell: int = 2, seed: int = 0, backoff: float = 1.0,
                 max_wait: float = 120.0):
        if not token:
            raise CollectError("mapillary needs an API client token: --token TOKEN or the "
                               "MAPILLARY_TOKEN environment variable")
        if per_cell < 1:
            raise CollectError(f"--per-cell {per_cell}: images per 0.25-degree cell, at least 1")
        self.api_url, self.box_deg, self.per_cell = api_url, box_deg, per_cell
        self.rng = random.Random(seed)
        self.http = Client(self.name, secrets=(token,), backoff=backoff, max_wait=max_wait,
                           auth={"Authorization": f"OAuth {token}"})
        self.cells: Counter = Counter()
        self.refused_in_a_row = 0

    def captures(self, country: Country, taken: set[str],
                 known: list[tuple[float, float]]) -> Iterator[Capture | Skipped | None]:
        places = Places(country.code, self.rng)
        self.cells.update(_cell(lat, lon) for lat, lon in known)  # a resumed run keeps the cap
        while True:
            lat, lon = places.point()
            half = self.box_deg / 2
            found = self.http.json(f"{self.api_url}/images", {
                "bbox": f"{lon - half:.6f},{lat - half:.6f},{lon + half:.6f},{lat + half:.6f}",
                "fields": FIELDS, "limit": 20}).get("data")
            if found is None:
                raise CollectError("mapillary: the answer has no 'data' list; has the API changed?")
            usable = [item for item in found if self._usable(item, taken, places)]
            if not usable:
                yield None
                continue
            yield self._capture(self.rng.choice(usable))

    def _usable(self, item: dict, taken: set[str], places: Places) -> bool:
        lat, lon = _position(item)
        return (str(item.get("id")) not in taken and bool(item.get("thumb_2048_url"))
                and places.contains(lat, lon) and self.cells[_cell(lat, lon)] < self.per_cell)

    def _capture(self, item: dict) -> Capture | Skipped | None:
        lat, lon = _position(item)
        self.cells[_cell(lat, lon)] += 1
        try:
            image = self.http.image(item["thumb_2048_url"], refused=True)
        except Unusable as exc:
            return Skipped(str(exc))
        except Refused as exc:  # the signed link expired, usually
            self.refused_in_a_row += 1
            if self.refused_in_a_row >= REFUSED_IN_A_ROW:
                raise CollectError(f"mapillary: the image host refused {REFUSED_IN_A_ROW} "
                                   f"downloads in a row ({exc}); is this machine blocked, or "
                                   "has the API changed?") from None
            return None
        self.refused_in_a_row = 0
        if image is None:  # the image was removed
            return None
        taken_at = item.get("captured_at")
        captured = (datetime.fromtimestamp(taken_at / 1000, timezone.utc).date().isoformat()
                    if taken_at else None)
        creator = (item.get("creator") or {}).get("username")
        return Capture(image, ".jpg", str(item["id"]), lat, lon,
                       item.get("compass_angle"), captured, creator, LICENCE)

    def close(self) -> None:
        self.http.close()


def _position(item: dict) -> tuple[float, float]:
    geometry = item.get("computed_geometry") or item.get("geometry") or {}
    lon, lat = geometry.get("coordinates", (math.nan, math.nan))
    return lat, lon


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lat / CELL_DEG), math.floor(lon / CELL_DEG)
