"""Google Street View Static API: random places inside the country, the nearest outdoor
panorama from the free metadata endpoint, then one image of it (random heading, a
GeoGuessr-like field of view). A panorama is never fetched twice, and one whose position
falls outside the country is skipped.

Needs the user's API key (``--key`` or ``GOOGLE_MAPS_API_KEY``); the images are billed by
Google, the metadata requests are free. See https://developers.google.com/maps/documentation/streetview
"""

from __future__ import annotations

import random
import time
from typing import Iterator

from ..data.countries import Country
from ..data.places import Places
from .collector import Capture, Skipped
from .http import Client, CollectError, Refused, Unusable

API_URL = "https://maps.googleapis.com/maps/api/streetview"
MAX_SIDE = 640  # the largest image side the API serves without a premium plan
MIN_SIDE = 16  # smaller images are refused as error images when downloaded
DEFAULT_SIZE = (640, 360)  # 16:9 like a GeoGuessr screenshot, the largest such size
FATAL = {"REQUEST_DENIED": "the API key was refused",
         "OVER_QUERY_LIMIT": "the quota is used up (raise it in the Google Cloud console's "
                             "Quotas page, or wait for it to reset)",
         "INVALID_REQUEST": "the request was invalid (has the API changed?)"}
# OVER_QUERY_LIMIT is also the per-minute limit (30,000 a minute, far above one collector's
# rate): one try after a pause, then it is taken for a used-up quota, within seconds.
LIMIT_RETRIES = 1
# Image requests refused (403) while the free metadata works: billing or the API is not
# enabled for the key, or the quota is used up. A handful in a row is enough to say so.
REFUSED_IN_A_ROW = 3
IMAGE_REFUSED = ("streetview: the key works for the free metadata requests but the image "
                 "requests are refused ({detail}); enable billing and the Street View Static "
                 "API for the key's Google Cloud project (console.cloud.google.com > APIs & "
                 "Services), check the key's API restrictions, and that its quota is not used up")
QUOTA_WORDS = ("quota", "limit", "exceeded")
WIDEN_EVERY, MAX_RADIUS_M = 20, 50_000  # sparse countries: widen the search after misses


class StreetView:
    name = "streetview"

    def __init__(self, key: str, api_url: str = API_URL, size: tuple[int, int] = DEFAULT_SIZE,
                 fov: float = 100.0, radius_m: int = 1000, seed: int = 0, backoff: float = 1.0,
                 max_wait: float = 120.0):
        if not key:
            raise CollectError("streetview needs a Google Maps API key: --key KEY or the "
                               "GOOGLE_MAPS_API_KEY environment variable")
        if max(size) > MAX_SIDE or min(size) < MIN_SIDE:
            raise CollectError(f"--size {size[0]}x{size[1]}: each side must be "
                               f"{MIN_SIDE}..{MAX_SIDE}")
        if radius_m < 1:
            raise CollectError(f"--radius {radius_m}: metres around a random place, at least 1")
        if not 10 <= fov <= 120:
            raise CollectError(f"--fov {fov}: the API takes 10 to 120 degrees")
        self.key, self.api_url, self.size, self.fov, self.radius_m = key, api_url, size, fov, radius_m
        self.backoff = backoff
        self.refused_in_a_row = 0
        self.rng = random.Random(seed)
        self.http = Client(self.name, secrets=(key,), backoff=backoff, max_wait=max_wait)

    def captures(self, country: Country, taken: set[str],
                 known: list[tuple[float, float]]) -> Iterator[Capture | Skipped | None]:
        places = Places(country.code, self.rng)
        misses = 0
        while True:
            radius = min(MAX_RADIUS_M, self.radius_m * 2 ** (misses // WIDEN_EVERY))
            capture = self._try(places, taken, radius)
            misses = 0 if capture else misses + 1
            yield capture

    def _try(self, places: Places, taken: set[str], radius: int) -> Capture | Skipped | None:
        """One random place: the nearest panorama, if new and in the country, as a capture."""
        meta = self._metadata(*places.point(), radius)
        if meta.get("status") != "OK":  # ZERO_RESULTS, NOT_FOUND: nothing near this place
            return None
        pano = meta["pano_id"]
        lat, lon = meta["location"]["lat"], meta["location"]["lng"]
        if pano in taken or not places.contains(lat, lon):
            return None
        heading = round(self.rng.uniform(0, 360), 1)
        try:
            image = self._image(pano, heading)
        except Unusable as exc:
            return Skipped(str(exc))
        if image is None:
            return None
        return Capture(image, ".jpg", pano, lat, lon, heading, meta.get("date"),
                       meta.get("copyright"), "Google Street View (see its terms)")

    def _image(self, pano: str, heading: float) -> bytes | None:
        """The billed image request. The panorama exists (the metadata said so), so a 403
        is the key, billing or quota, never a vanished image: stop after a handful."""
        try:
            image = self.http.image(self.api_url, {
                "size": f"{self.size[0]}x{self.size[1]}", "pano": pano, "heading": heading,
                "fov": self.fov, "pitch": 0, "key": self.key}, refused=True)
        except Refused as exc:
            self.refused_in_a_row += 1
            quota = any(word in str(exc).lower() for word in QUOTA_WORDS)
            if quota or self.refused_in_a_row >= REFUSED_IN_A_ROW:
                raise CollectError(IMAGE_REFUSED.format(detail=exc)) from None
            return None
        self.refused_in_a_row = 0
        return image

    def _metadata(self, lat: float, lon: float, radius: int) -> dict:
        for attempt in range(LIMIT_RETRIES + 1):
            meta = self.http.json(f"{self.api_url}/metadata", {
                "location": f"{lat:.6f},{lon:.6f}", "radius": radius, "source": "outdoor",
                "key": self.key})
            status = meta.get("status")
            if status == "OVER_QUERY_LIMIT" and attempt < LIMIT_RETRIES and \
                    "daily" not in str(meta.get("error_message", "")).lower():
                time.sleep(self.backoff)
                continue
            if status in FATAL:
                detail = self.http.redact(str(meta.get("error_message", "")))
                raise CollectError(f"streetview: {FATAL[status]} ({status}: {detail})")
            return meta

    def close(self) -> None:
        self.http.close()
