"""An imitation of GeoGuessr's game pages on 127.0.0.1, for the geoguessr source's tests:
a panorama in a canvas, interface overlays in pure magenta, a loading screen in pure green
before every round, a guess map and button, round results, five rounds a game, and a round
that never loads (the loading screen stays) in the game numbered ``hang_game``. The page
uses the data-qa selectors of geoconvnet/collect/geoguessr_page.py."""

from __future__ import annotations

import json

from fakes import FakeService

MAGENTA, GREEN = (255, 0, 255), (0, 255, 0)
SESSION_COOKIE = ("session", "logged-in")

PAGE = """<!doctype html><html><head><style>
body { margin: 0; overflow: hidden; background: #222; }
#pano { position: absolute; left: 0; top: 0; width: 1600px; height: 900px; }
[data-qa=loading] { position: absolute; inset: 0; background: rgb(0,255,0); z-index: 5; }
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
<div data-qa="loading"></div>
<div data-qa="hud"><span data-qa="round-number">1 / 5</span></div>
<div data-qa="compass"></div>
<div data-qa="guess-map"></div>
<button data-qa="perform-guess" disabled>Guess</button>
<div role="dialog"><button data-qa="close-round-result">Next</button>
  <button data-qa="play-again-button" style="display:none">Play again</button></div>
<script>
const SEED = %(seed)d, HANG = %(hang)s;
let round = 1;
const q = s => document.querySelector(s);
function draw() {
  const c = q('#pano').getContext('2d');
  for (let i = 0; i < 16; i++) {
    const v = (SEED * 37 + round * 53 + i * 29) %% 180;
    c.fillStyle = `rgb(${40 + v}, ${60 + (v * 3) %% 120}, ${90 + (v * 7) %% 100})`;
    c.fillRect(i * 100, 0, 100, 900);
  }
}
function startRound() {
  q('[data-qa=round-number]').textContent = round + ' / 5';
  q('#pano').style.visibility = 'hidden';
  q('[data-qa=loading]').style.display = 'block';
  q('[data-qa=perform-guess]').disabled = true;
  if (HANG && round === 2) return;  // this round never loads
  setTimeout(() => { draw(); q('#pano').style.visibility = 'visible';
                     q('[data-qa=loading]').style.display = 'none'; }, 150 + (round %% 3) * 150);
}
q('[data-qa=guess-map]').addEventListener('click', () => q('[data-qa=perform-guess]').disabled = false);
q('[data-qa=perform-guess]').addEventListener('click', () => {
  q('[role=dialog]').style.display = 'block';
  const last = round === 5;
  q('[data-qa=close-round-result]').style.display = last ? 'none' : 'inline';
  q('[data-qa=play-again-button]').style.display = last ? 'inline' : 'none';
});
q('[data-qa=close-round-result]').addEventListener('click', () => {
  q('[role=dialog]').style.display = 'none'; round += 1; startRound(); });
startRound();
</script></body></html>"""

SIGN_IN = '<!doctype html><html><body><a data-qa="sign-in" href="/signin">Sign in</a></body></html>'


class FakeGeoGuessr(FakeService):
    def __init__(self, hang_game: int = 2):
        self.games = 0
        self.hang_game = hang_game
        super().__init__()

    def handle(self, path, query, headers, count):
        html = {"Content-Type": "text/html"}
        if f"{SESSION_COOKIE[0]}={SESSION_COOKIE[1]}" not in headers.get("Cookie", ""):
            return 200, html, SIGN_IN.encode()
        if path.startswith("/maps/") and path.endswith("/play"):
            with self.lock:
                self.games += 1
                number = self.games
            return 302, {"Location": f"/game/{path.split('/')[2]}-{number:04d}"}, b""
        if path.startswith("/game/"):
            number = int(path.rsplit("-", 1)[1])
            hang = "true" if number == self.hang_game else "false"
            return 200, html, (PAGE % {"seed": number, "hang": hang}).encode()
        return 404, html, b"not found"

    def storage_state(self, path) -> str:
        """A Playwright storage state holding the site's session cookie (a logged-in user)."""
        cookie = {"name": SESSION_COOKIE[0], "value": SESSION_COOKIE[1], "domain": "127.0.0.1",
                  "path": "/", "expires": -1, "httpOnly": False, "secure": False,
                  "sameSite": "Lax"}
        path.write_text(json.dumps({"cookies": [cookie], "origins": []}))
        return str(path)
