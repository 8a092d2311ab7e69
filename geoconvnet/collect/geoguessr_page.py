"""Everything geoconvnet knows about GeoGuessr's web pages, in one place: when the site's
front end changes, this file is the fix. (The rest of the ``geoguessr`` source only says
*what* to do: wait for the panorama, hide the interface, capture, guess, next round.)

The selectors use the ``data-qa`` attributes the game's own front end sets for testing,
which change less often than its generated class names. They were written from the
reference's description and public userscripts, not checked against the live site from
here (no network): verify them with ``geoconvnet collect geoguessr --headed`` first.
"""

from __future__ import annotations

import re

SITE_URL = "https://www.geoguessr.com"
PLAY_PATH = "/maps/{slug}/play"  # a new game on a country's official map

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
OVERLAYS = ['[data-qa="guess-map"]', '[data-qa="perform-guess"]', '[data-qa="hud"]', '[data-qa="compass"]',
            '[data-qa="controls"]', '[data-qa="round-number"]', 'header', '[role="dialog"]',
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
