"""An imitation of GeoGuessr's game pages on 127.0.0.1, for the geoguessr source's tests:
a panorama in a canvas, interface overlays in pure magenta, a loading screen in pure green
before every round, a guess map and button, round results, five rounds a game, and the
game's JSON (``/api/v3/games/<token>``: each guessed round's lat, lng, panoId, heading).
The page uses the data-qa selectors of geoconvnet/collect/geoguessr_page.py.

What the real site does to a bot, on demand:
- ``quirks``: {(game, round): kind} with kind ``hang`` (the loading screen stays),
  ``blank-late`` (the panorama is drawn black first, its view 300 ms later),
  ``covered-late`` (a flat cover with a logo stays over the view for 300 ms) or
  ``blank-forever``; ``hang_game`` is a hang in round 2 of that game;
- ``same_places``: {game: earlier game} whose five places it serves again;
- ``down_first``: the first K navigations to a map answer 503;
- ``sign_in_delay_ms``: the sign-in wall (without the session cookie) is drawn that late;
- ``start_delay_ms``: the map page shows a start button that late (None: no map page, a
  game at once);
- ``api=False``: no game JSON (404), so rounds have no known place.
"""

from __future__ import annotations

import json

from fakes import FakeService

MAGENTA, GREEN, COVER = (255, 0, 255), (0, 255, 0), (40, 20, 80)
SESSION_COOKIE = ("session", "logged-in")
ROUNDS = 5

PAGE = """<!doctype html><html><head><style>
body { margin: 0; overflow: hidden; background: #222; }
#pano { position: absolute; left: 0; top: 0; width: 1600px; height: 900px; }
[data-qa=loading] { position: absolute; inset: 0; background: rgb(0,255,0); z-index: 5; }
#cover { position: absolute; inset: 0; background: rgb(40,20,80); z-index: 2; display: none; }
#cover div { position: absolute; left: 720px; top: 410px; width: 160px; height: 80px;
  background: #fff; }
[data-qa=hud] { position: absolute; left: 20px; top: 20px; width: 260px; height: 70px;
  background: rgb(255,0,255); z-index: 3; }
[data-qa=compass] { position: absolute; left: 30px; bottom: 30px; width: 60px; height: 60px;
  background: rgb(255,0,255); border-radius: 30px; z-index: 3; }
[data-qa=guess-map] { position: absolute; right: 20px; bottom: 20px; width: 320px;
  height: 220px; background: rgb(255,0,255); z-index: 3; }
[data-qa=perform-guess] { position: absolute; right: 30px; bottom: 30px; z-index: 4;
  background: rgb(255,0,255); border: 0; color: rgb(255,0,255); }
[role=dialog] { position: absolute; left: 600px; top: 350px; width: 400px; height: 200px;
  background: rgb(255,0,255); z-index: 6; display: none; }
</style></head><body>
<div class="gm-style"><canvas id="pano" data-qa="panorama" width="1600" height="900"
  style="visibility:hidden"></canvas><div class="gmnoprint" style="position:absolute;
  right:400px; top:20px; width:40px; height:80px; background:rgb(255,0,255)"></div></div>
<div id="cover"><div></div></div>
<div data-qa="loading"></div>
<div data-qa="hud"><span data-qa="round-number">1 / 5</span></div>
<div data-qa="compass"></div>
<div data-qa="guess-map"></div>
<button data-qa="perform-guess" disabled>Guess</button>
<div role="dialog"><button data-qa="close-round-result">Next</button>
  <button data-qa="play-again-button" style="display:none">Play again</button></div>
<script>
const TOKEN = %(token)s, PLACES = %(places)s, QUIRKS = %(quirks)s;
let round = 1;
const q = s => document.querySelector(s);
function draw(place) {
  const c = q('#pano').getContext('2d');
  for (let i = 0; i < 16; i++) {
    const v = (place * 37 + i * 29) %% 180;
    c.fillStyle = `rgb(${40 + v}, ${60 + (v * 3) %% 120}, ${90 + (v * 7) %% 100})`;
    c.fillRect(i * 100, 0, 100, 900);
  }
}
function black() {
  const c = q('#pano').getContext('2d');
  c.fillStyle = '#000'; c.fillRect(0, 0, 1600, 900);
}
function startRound() {
  const quirk = QUIRKS[round] || '', place = PLACES[round - 1];
  q('[data-qa=round-number]').textContent = round + ' / 5';
  q('#pano').style.visibility = 'hidden';
  q('[data-qa=loading]').style.display = 'block';
  q('[data-qa=perform-guess]').disabled = true;
  if (quirk === 'hang') return;  // this round never loads
  setTimeout(() => {
    if (quirk.startsWith('blank')) black(); else draw(place);
    if (quirk === 'covered-late') q('#cover').style.display = 'block';
    q('#pano').style.visibility = 'visible';
    q('[data-qa=loading]').style.display = 'none';
    if (quirk.endsWith('-late')) setTimeout(() => { draw(place);
      q('#cover').style.display = 'none'; }, 300);
  }, 150 + (round %% 3) * 150);
}
q('[data-qa=guess-map]').addEventListener('click', () => q('[data-qa=perform-guess]').disabled = false);
q('[data-qa=perform-guess]').addEventListener('click', async () => {
  await fetch(`/api/v3/games/${TOKEN}/guess?round=${round}`);  // the game records the guess
  q('[role=dialog]').style.display = 'block';
  const last = round === 5;
  q('[data-qa=close-round-result]').style.display = last ? 'none' : 'inline';
  q('[data-qa=play-again-button]').style.display = last ? 'inline' : 'none';
});
q('[data-qa=close-round-result]').addEventListener('click', () => {
  q('[role=dialog]').style.display = 'none'; round += 1; startRound(); });
startRound();
</script></body></html>"""

# A page drawn by its script after ``delay`` ms (the site renders in the browser).
LATE = """<!doctype html><html><body><div id="app"></div><script>
setTimeout(() => { document.getElementById('app').innerHTML = %(html)s; %(then)s }, %(delay)d);
</script></body></html>"""
SIGN_IN = '<a data-qa="sign-in" href="/signin">Sign in</a>'
START = '<button data-qa="start-game-button">Play</button>'
DOWN = b"<!doctype html><html><body><h1>503 Service Unavailable</h1></body></html>"


class FakeGeoGuessr(FakeService):
    def __init__(self, hang_game: int = 2, quirks: dict | None = None,
                 same_places: dict | None = None, down_first: int = 0,
                 sign_in_delay_ms: int = 0, start_delay_ms: int | None = None,
                 api: bool = True):
        self.games = 0
        self.navigations = 0  # to a map, down ones included
        self.quirks = dict(quirks or {})
        if hang_game:
            self.quirks[(hang_game, 2)] = "hang"
        self.same_places = dict(same_places or {})
        self.down_first, self.api = down_first, api
        self.sign_in_delay_ms, self.start_delay_ms = sign_in_delay_ms, start_delay_ms
        self.guessed: dict[str, int] = {}  # game token -> rounds guessed
        super().__init__()

    # -- what the tests check against -----------------------------------------------------
    def place(self, game: int, round_number: int) -> int:
        """The place (a number) of a game's round; a game in ``same_places`` repeats one."""
        return (self.same_places.get(game, game) - 1) * ROUNDS + round_number

    @staticmethod
    def location(place: int) -> dict:
        """A place's round in the game's JSON; every third place has no panorama id."""
        return {"lat": round(-55 + (place * 17.3) % 120, 6),
                "lng": round(-170 + (place * 41.7) % 340, 6),
                "panoId": None if place % 3 == 0 else f"{place * 2654435761 % 2**32:08X}",
                "heading": float(place * 47 % 360)}

    # -- the site -----------------------------------------------------------------------
    def handle(self, path, query, headers, count):
        html = {"Content-Type": "text/html"}
        if path.startswith("/maps/") and path.endswith("/play"):
            with self.lock:
                self.navigations += 1
                down = self.navigations <= self.down_first
            if down:
                return 503, html, DOWN
        if f"{SESSION_COOKIE[0]}={SESSION_COOKIE[1]}" not in headers.get("Cookie", ""):
            return 200, html, self._late(SIGN_IN, self.sign_in_delay_ms)
        if path.startswith("/maps/") and path.endswith("/play") and \
                self.start_delay_ms is not None:
            start = path[:-len("/play")] + "/start"
            return 200, html, self._late(START, self.start_delay_ms, then=(
                f"document.querySelector('button').onclick = () => location.href = "
                f"{json.dumps(start)};"))
        if path.startswith("/maps/") and path.endswith(("/play", "/start")):
            with self.lock:
                self.games += 1
                number = self.games
            return 302, {"Location": f"/game/{path.split('/')[2]}-{number:04d}"}, b""
        if path.startswith("/game/"):
            return 200, html, self._game_page(path.rsplit("/", 1)[1])
        if path.startswith("/api/v3/games/") and self.api:
            return self._api(path[len("/api/v3/games/"):], query)
        return 404, html, b"not found"

    def _game_page(self, token: str) -> bytes:
        number = int(token.rsplit("-", 1)[1])
        quirks = {r: kind for (game, r), kind in self.quirks.items() if game == number}
        return (PAGE % {"token": json.dumps(token), "quirks": json.dumps(quirks),
                        "places": json.dumps([self.place(number, r)
                                              for r in range(1, ROUNDS + 1)])}).encode()

    def _api(self, rest: str, query: dict):
        token, _, action = rest.partition("/")
        with self.lock:
            if action == "guess":
                self.guessed[token] = max(self.guessed.get(token, 0), int(query["round"]))
            guessed = self.guessed.get(token, 0)
        number = int(token.rsplit("-", 1)[1])
        # Like the real game: the rounds so far, so a round's place is known once guessed.
        game = {"token": token, "round": guessed,
                "rounds": [self.location(self.place(number, r)) for r in range(1, guessed + 1)]}
        return 200, {"Content-Type": "application/json"}, json.dumps(game).encode()

    @staticmethod
    def _late(html: str, delay_ms: int, then: str = "") -> bytes:
        return (LATE % {"html": json.dumps(html), "then": then, "delay": delay_ms}).encode()

    def storage_state(self, path) -> str:
        """A Playwright storage state holding the site's session cookie (a logged-in user)."""
        cookie = {"name": SESSION_COOKIE[0], "value": SESSION_COOKIE[1], "domain": "127.0.0.1",
                  "path": "/", "expires": -1, "httpOnly": False, "secure": False,
                  "sameSite": "Lax"}
        path.write_text(json.dumps({"cookies": [cookie], "origins": []}))
        return str(path)
