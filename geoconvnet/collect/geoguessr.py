"""GeoGuessr in a real browser (Playwright driving Chromium), the reference's way made
robust: open the country's official map, wait for the panorama, hide the interface,
capture the view at 1600x900, make a guess, go to the next round. A round that does not
load is reloaded, with growing waits, before the source gives up with a clear error.

For personal use under GeoGuessr's terms of service: it plays the game as a logged-in
user would, at the pace set by ``--delay``. Log in by passing a Playwright storage state
(``--storage-state state.json``, saved from a browser where you are logged in) or a browser
profile folder (``--profile DIR``); neither is copied, stored or printed. Every detail of
the site's pages is in :mod:`.geoguessr_page`.
"""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path
from typing import Iterator

from ..data.countries import Country
from .collector import Capture
from .geoguessr_page import HIDE_CSS, SELECTORS, SITE_URL, game_token, play_url
from .http import CollectError

VIEWPORT = {"width": 1600, "height": 900}  # the reference's screenshots
LAUNCH_ARGS = ["--disable-gpu", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]


class GeoGuessr:
    name = "geoguessr"

    def __init__(self, site_url: str = SITE_URL, browser: str | None = None,
                 storage_state: str | None = None, profile: str | None = None,
                 headed: bool = False, round_timeout: float = 30.0, settle: float = 1.0,
                 reloads: int = 3, backoff: float = 2.0, seed: int = 0):
        for what, path in (("--storage-state", storage_state), ("--profile", profile)):
            if path and not Path(path).exists():
                raise CollectError(f"{what} {path}: not found")
        self.site_url, self.round_timeout, self.settle = site_url, round_timeout, settle
        self.reloads, self.backoff, self.rng = reloads, backoff, random.Random(seed)
        self._playwright, self._context = _open_browser(browser, storage_state, profile, headed)
        self.page = self._context.new_page()

    # -- the rounds ---------------------------------------------------------------------
    def captures(self, country: Country, taken: set[str],
                 known: list[tuple[float, float]]) -> Iterator[Capture | None]:
        self._new_game(country)
        while True:
            yield self._round(country, taken)

    def _round(self, country: Country, taken: set[str]) -> Capture | None:
        """Play one round: its capture (None if it was collected before). A round that
        fails (it hangs, a page times out) is replaced by a fresh game, with growing waits,
        up to ``reloads`` times."""
        for attempt in range(self.reloads + 1):
            try:
                if attempt:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                    self._new_game(country)
                return self._play_round(country, taken)
            except _playwright_error() as exc:
                if self.page.is_closed():  # the browser went away (Ctrl-C reaches it too)
                    raise CollectError("geoguessr: the browser closed") from None
                problem = str(exc).splitlines()[0]
        raise CollectError(f"geoguessr: rounds of {country.folder} kept failing after "
                           f"{self.reloads} reloads ({problem}); is the site up, and do the "
                           "selectors in geoguessr_page.py still match it?")

    def _play_round(self, country: Country, taken: set[str]) -> Capture | None:
        timeout = self.round_timeout * 1000
        self.page.locator(SELECTORS["panorama"]).first.wait_for(state="visible", timeout=timeout)
        self.page.locator(SELECTORS["loading"]).first.wait_for(state="hidden", timeout=timeout)
        time.sleep(self.settle)  # tiles keep sharpening for a moment
        round_id = self._round_id()
        capture = None if round_id in taken else Capture(self._capture(), ".png", round_id)
        self._guess_and_continue(country)
        return capture

    def _new_game(self, country: Country) -> None:
        self.page.goto(play_url(self.site_url, country.folder))
        if self._visible("sign_in"):
            raise CollectError("geoguessr: the site asks to sign in; pass --storage-state or "
                               "--profile of a browser where you are logged in")
        if self._visible("start"):
            self.page.locator(SELECTORS["start"]).first.click()

    def _visible(self, name: str) -> bool:
        return self.page.locator(f"{SELECTORS[name]} >> visible=true").count() > 0

    def _round_id(self) -> str:
        label = self.page.locator(SELECTORS["round"])
        if not label.count():
            raise CollectError("geoguessr: no round number on the page; do the selectors in "
                               "geoguessr_page.py still match the site?")
        return f"{game_token(self.page.url)}-{label.first.inner_text().split('/')[0].strip()}"

    def _capture(self) -> bytes:
        """The view without the interface: hidden by a style sheet for the screenshot."""
        style = self.page.add_style_tag(content=HIDE_CSS)
        try:
            return self.page.screenshot(type="png", clip={"x": 0, "y": 0, **VIEWPORT})
        finally:
            style.evaluate("element => element.remove()")

    def _guess_and_continue(self, country: Country) -> None:
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
        if self._visible("play_again"):  # the game's last round: start a new game
            self._new_game(country)
        else:
            self.page.locator(SELECTORS["next_round"]).first.click()

    def close(self) -> None:
        # After Ctrl-C the browser got the signal too and may be gone already: closing it
        # must not turn a clean stop into a traceback.
        with contextlib.suppress(Exception):
            self._context.close()
        with contextlib.suppress(Exception):
            self._playwright.stop()


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
