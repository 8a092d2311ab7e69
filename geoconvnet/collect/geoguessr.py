"""GeoGuessr in a real browser (Playwright driving Chromium), the reference's way made
robust: open the country's official map, wait for the panorama, hide the interface,
capture the view at 1600x900, make a guess, read where the round really was from the
game's result, go to the next round.

What can go wrong on the real site is waited for or retried, within bounds: every
navigation (the first one included) is retried with growing waits when the site cannot
be reached or answers 5xx, and gives one clear error after ``reloads`` retries; the
sign-in wall and the start button may appear late (the game renders in the browser), so
they are waited for; a capture that is blank, near-uniform or still covered (tiles not
drawn, a loading screen, a black panorama) is taken again after a wait, and the round is
skipped (:class:`Skipped`) when it stays so; a round that hangs is replaced by a fresh game.

A round is identified by its place (the panorama id the game gives, else its position),
so the same place reached in two games, or in two runs, is saved once; its position goes
into the record. When the game does not say where a round was, the record has no
coordinates and the round is identified by game and round number, as before.

Measured 2026-11-29 on 2 cores shared with other jobs (load 4-6): the capture check takes
98 ms per 1600x900 PNG, and against the test imitation (rounds loading in 0.15-0.45 s,
settle 0.05 s) the source makes 53.4 and 49.9 images/min where the version without these
checks made 53.0 and 49.6 (two runs each, interleaved): the checks cost nothing visible.

For personal use under GeoGuessr's terms of service: it plays the game as a logged-in
user would, at the pace set by ``--delay``. Log in by passing a Playwright storage state
(``--storage-state state.json``, saved from a browser where you are logged in) or a browser
profile folder (``--profile DIR``); neither is copied, stored or printed. Every detail of
the site's pages is in :mod:`.geoguessr_page`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from ..data.countries import Country
from .collector import Capture, Skipped
from .geoguessr_page import (HIDE_CSS, SELECTORS, SITE_URL, RoundPlace, game_api_url,
                             game_token, play_url, round_place)
from .http import CollectError

VIEWPORT = {"width": 1600, "height": 900}  # the reference's screenshots
LAUNCH_ARGS = ["--disable-gpu", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]
SIGN_IN = ("geoguessr: the site asks to sign in; pass --storage-state or --profile of a "
           "browser where you are logged in")

# A capture is checked on a 160x90 box-filtered copy (each pixel the mean of 10x10):
# - near-uniform: the spread of its brightness is under FLAT_SPREAD levels (of 255): a
#   black or grey panorama, tiles not drawn, a plain loading screen;
# - covered: at least FLAT_SHARE of it lies within FLAT_TOLERANCE levels (each channel) of one
#   colour: a loading screen with a logo on it, a dialog, a half-drawn panorama. A real
#   view's sky or road changes colour across the frame by far more than that.
CHECK_SIZE = (160, 90)
FLAT_SPREAD = 6.0
FLAT_SHARE = 0.5
FLAT_TOLERANCE = 4
BLANK = "capture stayed blank (a near-uniform view)"
COVERED = "capture stayed covered (one flat colour over half the view)"


class GeoGuessr:
    name = "geoguessr"

    def __init__(self, site_url: str = SITE_URL, browser: str | None = None,
                 storage_state: str | None = None, profile: str | None = None,
                 headed: bool = False, round_timeout: float = 30.0, settle: float = 1.0,
                 reloads: int = 3, backoff: float = 2.0, blank_retries: int = 3,
                 seed: int = 0):
        for what, path in (("--storage-state", storage_state), ("--profile", profile)):
            if path and not Path(path).exists():
                raise CollectError(f"{what} {path}: not found")
        self.site_url, self.round_timeout, self.settle = site_url, round_timeout, settle
        self.reloads, self.backoff, self.rng = reloads, backoff, random.Random(seed)
        self.blank_retries = blank_retries
        self._game_over = True  # no game open yet: the next round starts one
        self._playwright, self._context = _open_browser(browser, storage_state, profile, headed)
        self.page = self._context.new_page()

    # -- the rounds ---------------------------------------------------------------------
    def captures(self, country: Country, taken: set[str],
                 known: list[tuple[float, float]]) -> Iterator[Capture | Skipped | None]:
        self._game_over = True  # a new country: a game on its map
        while True:
            yield self._round(country, taken)

    def _round(self, country: Country, taken: set[str]) -> Capture | Skipped | None:
        """Play one round: its capture, None if its place was collected before, Skipped if
        it gave no clear view. A round that fails (the site cannot be reached, a page hangs
        or times out) is replaced by a fresh game, with growing waits, up to ``reloads``
        times; the game's first navigation is retried the same way."""
        problem: Exception | None = None
        for attempt in range(self.reloads + 1):
            try:
                if attempt:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                if attempt or self._game_over:
                    self._new_game(country)
                return self._play_round(taken)
            except (_SiteDown, _playwright_error()) as exc:
                if self.page.is_closed():  # the browser went away (Ctrl-C reaches it too)
                    # Ctrl-C reaches the browser and us at once; the browser may die before
                    # our KeyboardInterrupt is raised: let it arrive, so Ctrl-C stays Ctrl-C.
                    time.sleep(0.5)
                    raise CollectError("geoguessr: the browser closed") from None
                problem = exc
        retries = f"after {self.reloads} retries" if self.reloads else "at once"
        if isinstance(problem, _SiteDown):
            raise CollectError(f"geoguessr: could not open {problem.url} {retries} ({problem}); "
                               "check the network connection and --site-url, or try again "
                               "later if the site is down")
        raise CollectError(f"geoguessr: rounds of {country.folder} kept failing {retries} "
                           f"({_first_line(problem)}); is the site up, and do the selectors "
                           "in geoguessr_page.py still match it?")

    def _new_game(self, country: Country) -> None:
        url = play_url(self.site_url, country.folder)
        try:
            response = self.page.goto(url, timeout=self.round_timeout * 1000)
        except _playwright_error() as exc:  # refused, no such host, timed out
            raise _SiteDown(url, _first_line(exc).replace(f" at {url}", "")) from None
        status = response.status if response is not None else 200
        if status >= 500 or status == 429:
            raise _SiteDown(url, f"HTTP {status}")
        if status in (404, 410):  # no retry brings a map back (a sign-in wall may be 401/403)
            raise CollectError(f"geoguessr: {url} answered HTTP {status}: the site has no such "
                               f"map for {country.folder}; check --site-url and the map names "
                               "in geoguessr_page.py")
        # The page renders in the browser: wait for what it shows, not just for its load.
        shown = self._wait_for("sign_in", "start", "panorama")
        if shown == "sign_in":
            raise CollectError(SIGN_IN)
        if shown == "start":
            self.page.locator(SELECTORS["start"]).first.click()
        self._game_over = False

    def _play_round(self, taken: set[str]) -> Capture | Skipped | None:
        if self._wait_for("sign_in", "panorama") == "sign_in":  # it may follow "start"
            raise CollectError(SIGN_IN)
        self.page.locator(SELECTORS["loading"]).first.wait_for(
            state="hidden", timeout=self.round_timeout * 1000)
        time.sleep(self.settle)  # tiles keep sharpening for a moment
        data, problem = self._clear_capture()
        token, number = game_token(self.page.url), self._round_number()
        self._guess()
        place = self._place(token, number)  # known once guessed: the result shows it
        self._next_round()
        source_id = place_id(place) if place else f"{token}-{number}"
        if source_id in taken:
            return None
        if data is None:
            return Skipped(problem)
        if place is None:
            return Capture(data, ".png", source_id)
        return Capture(data, ".png", source_id, place.lat, place.lon, place.heading)

    def _wait_for(self, *names: str) -> str:
        """Wait (up to the round timeout) until one of the page parts ``names`` shows, and
        say which (the first of them that shows)."""
        deadline = time.monotonic() + self.round_timeout
        either = self.page.locator(", ".join(SELECTORS[name] for name in names) +
                                   " >> visible=true").first
        while True:
            either.wait_for(timeout=max(deadline - time.monotonic(), 0.001) * 1000)
            shown = next((name for name in names if self._visible(name)), None)
            if shown:  # else it went again between the two looks: wait on
                return shown

    def _visible(self, name: str) -> bool:
        return self.page.locator(f"{SELECTORS[name]} >> visible=true").count() > 0

    def _round_number(self) -> str:
        label = self.page.locator(SELECTORS["round"])
        if not label.count():
            raise CollectError("geoguessr: no round number on the page; do the selectors in "
                               "geoguessr_page.py still match the site?")
        return label.first.inner_text().split("/")[0].strip()

    def _clear_capture(self) -> tuple[bytes | None, str | None]:
        """A capture that shows a view, taken again after growing waits while it is blank
        or covered, ``blank_retries`` times; (None, why) if it stays so."""
        problem = None
        for attempt in range(self.blank_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            data = self._capture()
            problem = capture_problem(data)
            if problem is None:
                return data, None
        return None, problem

    def _capture(self) -> bytes:
        """The view without the interface: hidden by a style sheet for the screenshot."""
        style = self.page.add_style_tag(content=HIDE_CSS)
        try:
            return self.page.screenshot(type="png", clip={"x": 0, "y": 0, **VIEWPORT})
        finally:
            # Ctrl-C closes the browser too: a failed clean-up must not replace the
            # KeyboardInterrupt (a closed page fails the next step anyway).
            with contextlib.suppress(_playwright_error()):
                style.evaluate("element => element.remove()")

    def _guess(self) -> None:
        guess_map = self.page.locator(SELECTORS["guess_map"]).first
        box = guess_map.bounding_box()
        if box is None:
            raise CollectError("geoguessr: no guess map on the page; do the selectors in "
                               "geoguessr_page.py still match the site?")
        guess_map.hover()  # the map grows on hover in the game
        box = guess_map.bounding_box() or box
        self.page.mouse.click(box["x"] + self.rng.uniform(0.2, 0.8) * box["width"],
                              box["y"] + self.rng.uniform(0.2, 0.8) * box["height"])
        self.page.locator(SELECTORS["guess"]).first.click()
        result = f'{SELECTORS["next_round"]}, {SELECTORS["play_again"]} >> visible=true'
        self.page.locator(result).first.wait_for(timeout=self.round_timeout * 1000)

    def _place(self, token: str, number: str) -> RoundPlace | None:
        """Where round ``number`` really was, from the game's JSON (read with the browser's
        log-in); None when the game does not say (then the record has no coordinates)."""
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.page.url))
        try:
            response = self._context.request.get(game_api_url(origin, token),
                                                 timeout=self.round_timeout * 1000)
            game = response.json() if response.ok else None
        except (_playwright_error(), ValueError):  # no such endpoint, not JSON
            return None
        return round_place(game, int(number)) if number.isdigit() else None

    def _next_round(self) -> None:
        if self._visible("play_again"):  # the game's last round: the next round starts one
            self._game_over = True
        else:
            self.page.locator(SELECTORS["next_round"]).first.click()

    def close(self) -> None:
        # After Ctrl-C the browser got the signal too and may be gone already: closing it
        # must not turn a clean stop into a traceback. Nor may Playwright's log of the
        # late answers to the calls Ctrl-C interrupted ("Cannot find command to respond").
        quiet = logging.getLogger("playwright")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            with contextlib.suppress(Exception):
                self._context.close()
            with contextlib.suppress(Exception):
                self._playwright.stop()
        finally:
            quiet.setLevel(level)


def place_id(place: RoundPlace) -> str:
    """A round's id by its place, the same in every game that reaches it: the panorama's id
    when the game gives it, else the position to 4 decimals (about 11 m). The ``:`` keeps
    these apart from the older ``<game token>-<round>`` ids, which stay valid."""
    if place.pano_id:
        return f"pano:{place.pano_id}"
    return f"at:{round(place.lat, 4) + 0.0:.4f},{round(place.lon, 4) + 0.0:.4f}"


def capture_problem(png: bytes) -> str | None:
    """Why a capture shows no usable view (:data:`BLANK`, :data:`COVERED`), or None."""
    with Image.open(io.BytesIO(png)) as image:
        small = np.asarray(image.convert("RGB").resize(CHECK_SIZE, Image.Resampling.BOX),
                           dtype=np.float32)
    if small.mean(axis=2).std() < FLAT_SPREAD:
        return BLANK
    pixels = small.reshape(-1, 3)
    bins = (pixels // 8).astype(np.int32) @ np.array([1024, 32, 1])  # 32 levels a channel
    modal = pixels[bins == np.bincount(bins).argmax()].mean(axis=0)
    if (np.abs(pixels - modal) <= FLAT_TOLERANCE).all(axis=1).mean() >= FLAT_SHARE:
        return COVERED
    return None


class _SiteDown(Exception):
    """A navigation that did not reach the site (refused, no such host, timed out, 5xx)."""

    def __init__(self, url: str, problem: str):
        super().__init__(problem)
        self.url = url


def _first_line(exc: BaseException | None) -> str:
    return str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else \
        type(exc).__name__


def _open_browser(executable: str | None, storage_state: str | None, profile: str | None,
                  headed: bool):
    try:
        from playwright.sync_api import sync_playwright  # lazy: an optional dependency
    except ImportError:
        raise CollectError("the geoguessr source needs Playwright: pip install "
                           "'geoconvnet[collect]' (and `playwright install chromium`, or "
                           "--browser PATH of an installed Chromium)") from None
    playwright = sync_playwright().start()
    options = {"headless": not headed, "args": LAUNCH_ARGS, "executable_path": executable}
    try:
        if profile:
            context = playwright.chromium.launch_persistent_context(
                profile, viewport=VIEWPORT, **options)
        else:
            browser = playwright.chromium.launch(**options)
            context = browser.new_context(viewport=VIEWPORT, storage_state=storage_state)
    except Exception as exc:  # Playwright's errors for a missing or broken browser
        playwright.stop()
        raise CollectError(f"geoguessr: could not start Chromium ({str(exc).splitlines()[0]}); "
                           "pass --browser PATH or run `playwright install chromium`") from None
    return playwright, context


def _playwright_error():
    from playwright.sync_api import Error  # lazy: an optional dependency (timeouts included)

    return Error
