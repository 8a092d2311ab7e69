"""Everything geoconvnet knows about GeoGuessr's web pages, in one place: when the site's
front end changes, this file is the fix. (The rest of the ``geoguessr`` source only says
*what* to do: wait for the panorama, hide the interface, capture, guess, next round.)

The selectors use the ``data-qa`` attributes the game's own front end sets for testing,
which change less often than its generated class names; the game's JSON (``GAME_API_PATH``)
is read the way public userscripts read it. All of it was written from the reference's
description and those public descriptions, and is verified only against the imitation in
``tests/collect/fake_geoguessr.py``, not against the live site (no network here): check it
with ``geoconvnet collect geoguessr --headed`` first.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

SITE_URL = "https://www.geoguessr.com"
PLAY_PATH = "/maps/{slug}/play"  # a new game on a country's official map
# The game as JSON, for the browser's logged-in session. Its "rounds" list holds each round
# played so far: {"lat": .., "lng": .., "panoId": .., "heading": ..}; the round's true
# place is certainly there once the round is guessed (the result screen shows it).
GAME_API_PATH = "/api/v3/games/{token}"
ROUNDS, LAT, LON, PANO_ID, HEADING = "rounds", "lat", "lng", "panoId", "heading"

# Official country maps: the slug is the class name in lower case, its words joined by "-"
# (SouthKorea -> south-korea, USA -> usa), except these.
SLUG_EXCEPTIONS = {"UnitedArabEmirates": "uae", "UnitedKingdom": "uk"}

SELECTORS = {
    "start": '[data-qa="start-game-button"]',  # the map page's "play" button, if shown
    "panorama": '[data-qa="panorama"]',  # the street view itself: what is captured
    "loading": '[data-qa="loading"]',  # any loading screen over the panorama
    "round": '[data-qa="round-number"]',  # text such as "2 / 5"
    "guess_map": '[data-qa="guess-map"]',  # the small map a guess is clicked on
    "guess": '[data-qa="perform-guess"]',
    "next_round": '[data-qa="close-round-result"]',
    "play_again": '[data-qa="play-again-button"]',
    "sign_in": '[data-qa="sign-in"]',  # shown instead of a game when not logged in
}

# Interface drawn over the panorama, hidden while capturing (and shown again to guess).
OVERLAYS = ['[data-qa="guess-map"]', '[data-qa="perform-guess"]', '[data-qa="hud"]',
            '[data-qa="compass"]', '[data-qa="controls"]', '[data-qa="round-number"]',
            'header', '[role="dialog"]',
            '[class*="game-layout__top-hud"]', '[class*="game-layout__controls"]',
            # Google's own controls and credits, but not .gm-style: that is the panorama
            '.gmnoprint', '.gm-style-cc', '.gm-bundled-control', '[class*="toast"]']
HIDE_CSS = ", ".join(OVERLAYS) + " { visibility: hidden !important; }"


def map_slug(folder: str) -> str:
    return SLUG_EXCEPTIONS.get(folder, re.sub(r"(?<=[a-z])(?=[A-Z])", "-", folder).lower())


def play_url(site_url: str, folder: str) -> str:
    return site_url.rstrip("/") + PLAY_PATH.format(slug=map_slug(folder))


def game_token(url: str) -> str:
    """The game's id from a URL like ``.../game/<token>``; the whole path otherwise."""
    path = url.split("?", 1)[0].rstrip("/")
    return path.rsplit("/game/", 1)[1] if "/game/" in path else path.rsplit("/", 1)[-1]


def game_api_url(site_url: str, token: str) -> str:
    return site_url.rstrip("/") + GAME_API_PATH.format(token=token)


@dataclass(frozen=True)
class RoundPlace:
    """Where a round was, as the game's JSON gives it."""

    lat: float
    lon: float
    pano_id: str | None = None
    heading: float | None = None


def round_place(game: object, number: int) -> RoundPlace | None:
    """Round ``number`` (1-based) of a game's JSON, or None when the JSON does not say
    where it was: a missing round, a missing, non-numeric or out-of-range position, or
    (0, 0) (what an unset position reads as). Never a guess."""
    rounds = game.get(ROUNDS) if isinstance(game, dict) else None
    if not isinstance(rounds, list) or not 1 <= number <= len(rounds):
        return None
    entry = rounds[number - 1]
    if not isinstance(entry, dict):
        return None
    lat, lon = _number(entry.get(LAT)), _number(entry.get(LON))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180) or \
            lat == lon == 0:
        return None
    pano = entry.get(PANO_ID)
    return RoundPlace(lat, lon, pano if isinstance(pano, str) and pano.strip() else None,
                      _number(entry.get(HEADING)))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        return None
    return float(value)
