// The geoconvnet page: send screenshots to /api/predict one at a time and show, for each,
// the top guesses, a world map shaded by probability with the GeoGuessr pins, and Grad-CAM
// heat maps of the top guesses (made on demand by /api/heatmap, the top one first). A model
// with a location head also gets its likely geocells shaded around the pin.
"use strict";

const NORTH = 84;  // the map's top latitude (equirectangular, 1 unit = 1 degree, down to 58 S)
const SVG_NS = "http://www.w3.org/2000/svg";
const state = { model: null, world: null, names: {}, queue: null, ready: null };
const MAX_CARDS = 12;  // older cards go, and their images' memory with them
// What the model looked at, in a player's words (the checkpoint's eval view).
const VIEW_WORDS = {
  full: "the whole screenshot", grid: "the whole screenshot, tile by tile",
  center: "the middle of the screenshot", random: "a random part of the screenshot",
};
// Files given before the model's description has arrived wait for it.
state.queue = new Promise((resolve) => { state.ready = resolve; });

const $ = (selector, root = document) => root.querySelector(selector);
const percent = (p) => (100 * p).toFixed(p >= 0.995 || p < 0.0005 ? 0 : 1) + "%";
const project = ([lon, lat]) => [lon + 180, NORTH - lat];
const KM_PER_DEGREE = 111.2;  // of latitude; a degree of longitude is cos(lat) of it
const CELL_MIN_RADIUS = 1;  // degrees: the least a cell is drawn with on the world map

async function getJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

async function start() {
  wireInputs();
  const [model, world, names] = await Promise.all(
    [getJSON("/api/model"), getJSON("/api/world"), getJSON("/api/countries")]);
  state.model = model;
  state.names = names;
  state.world = Object.entries(world).map(([code, rings]) => [code, ringsToPath(rings), extent(rings)]);
  const calibration = model.calibrated ? `calibrated (T=${model.temperature.toFixed(2)})`
                                       : "not calibrated";
  const countries = Object.values(model.codes).every((code) => code);
  const classes = `${model.class_names.length} ${countries ? "countries" : "classes"}`;
  const head = model.location_head
    ? `a location head with ${model.location_head.cells} cells, ` : "";
  $("#model").textContent = `${model.name}: ${model.arch} (${model.format}), ${classes}, ` +
    `${head}${calibration}, on ${model.device}`;
  state.ready();
}

function wireInputs() {
  const drop = $("#drop"), input = $("#files");
  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  // Files dropped anywhere on the page count (the browser would otherwise open them in place
  // of the page, losing every card); the drop zone only lights up.
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) addFiles(e.dataTransfer.files);
  });
  drop.addEventListener("dragenter", () => drop.classList.add("over"));
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  document.addEventListener("paste", (e) => {
    const files = [...e.clipboardData.items].filter((i) => i.kind === "file")
                                             .map((i) => i.getAsFile());
    if (files.length) addFiles(files);
  });
}

function addFiles(files) {
  for (const file of files) {
    const card = newCard(file);
    // One request at a time: the server answers them in turn anyway, and cards fill in order.
    state.queue = state.queue.then(() => (card.removed ? null : analyse(file, card)));
  }
}

function newCard(file) {
  const card = $("#card").content.firstElementChild.cloneNode(true);
  card.urls = [];  // object URLs this card made: revoked when it goes
  $(".filename", card).textContent = file.name || "pasted image";
  $(".close", card).addEventListener("click", () => removeCard(card));
  const results = $("#results");
  results.prepend(card);
  while (results.children.length > MAX_CARDS) removeCard(results.lastElementChild);
  return card;
}

function removeCard(card) {
  card.removed = true;
  for (const url of card.urls) URL.revokeObjectURL(url);
  card.urls = [];
  card.remove();
}

function objectURL(card, blob) {
  const url = URL.createObjectURL(blob);
  if (card.removed) URL.revokeObjectURL(url); else card.urls.push(url);
  return url;
}

async function analyse(file, card) {
  const form = new FormData();
  form.append("file", file, file.name || "pasted.png");
  const status = $(".status", card);
  try {
    const response = await fetch("/api/predict", { method: "POST", body: form });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    status.textContent = statusLine(body);
    show(card, file, body);
  } catch (error) {
    status.textContent = `Could not analyse this file: ${error.message}`;
    status.classList.add("error");
  }
}

function statusLine(result) {
  const looked = VIEW_WORDS[result.view] || "the screenshot";
  const ms = Math.round(result.timings_ms.predict + (result.timings_ms.pin || 0));
  return `Looked at ${looked} (${result.image.width} × ${result.image.height} pixels) ` +
    `in ${ms} ms.`;
}

function show(card, file, result) {
  $(".body", card).hidden = false;
  showGuesses(card, result.top);
  drawMap($(".map", card), result);
  drawInset($(".inset", card), $(".map", card), result);
  showPins($(".pins", card), result.pin);
  const meta = result.calibrated ? "calibrated probabilities" : "probabilities (not calibrated)";
  $(".meta", card).textContent = meta;
  showHeatMaps(card, file, result);
}

function showGuesses(card, top) {
  const list = $(".top5", card);
  const best = top[0].probability || 1;
  for (const [i, guess] of top.entries()) {
    const bar = element("div", "bar");
    bar.style.width = `${Math.max(2, 100 * guess.probability / best)}%`;
    const item = element("li", "", element("span", "rank", `${i + 1}`),
                         element("span", "", element("span", "name", guess.name), bar),
                         element("span", "p", percent(guess.probability)));
    item.dataset.country = guess.country;
    list.append(item);
  }
}

function ringsToPath(rings) {
  return rings.map((ring) => "M" + ring.map((point) => project(point)
    .map((v) => v.toFixed(2)).join(" ")).join("L") + "Z").join("");
}

function shade(probability, highest) {
  // Square root so that a 5% second guess is still visible next to a 90% first one.
  const t = Math.sqrt(probability / highest);
  const mix = (a, b) => Math.round(a + (b - a) * t);
  return `rgb(${mix(247, 8)},${mix(251, 81)},${mix(255, 156)})`;
}

// A country this small (largest side in degrees) is a speck at this scale: it gets a dot.
const SPECK = 4;

function extent(rings) {
  // [west, south, east, north] of a country's largest ring (islands far away don't count).
  let best = null, bestArea = -1;
  for (const ring of rings) {
    const xs = ring.map((p) => p[0]), ys = ring.map((p) => p[1]);
    const box = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
    const area = (box[2] - box[0]) * (box[3] - box[1]);
    if (area > bestArea) { best = box; bestArea = area; }
  }
  return best;
}

function label(code, guess) {
  if (guess) return `${guess.name}: ${percent(guess.probability)}`;
  return `${state.names[code] || code}: not among this model's countries`;
}

function drawMap(svg, result) {
  const byCode = new Map(result.probabilities.filter((g) => g.code).map((g) => [g.code, g]));
  const highest = result.top[0].probability || 1;
  const specks = [];
  for (const [code, d, box] of state.world) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    const guess = byCode.get(code);
    if (guess) path.style.fill = shade(guess.probability, highest);
    else path.classList.add("other");
    path.dataset.label = label(code, guess);
    path.dataset.code = code;
    svg.append(path);
    if (guess && visible(guess.probability, highest) &&
        Math.max(box[2] - box[0], box[3] - box[1]) < SPECK) specks.push([guess, box]);
  }
  // Small countries with a visible probability get a dot that grows with it, drawn over
  // their neighbours: Malta at 78% must not vanish next to Kazakhstan at 19%.
  specks.sort((a, b) => a[0].probability - b[0].probability);
  for (const [guess, box] of specks) {
    const dot = svgElement("circle", { cx: (box[0] + box[2]) / 2 + 180,
      cy: NORTH - (box[1] + box[3]) / 2, r: 2 + 4 * Math.sqrt(guess.probability / highest),
      class: "speck" });
    dot.style.fill = shade(guess.probability, highest);
    dot.dataset.label = label(guess.code, guess);
    dot.dataset.code = guess.code;
    svg.append(dot);
  }
  if (result.cells) drawCells(svg, result.cells);
  if (result.pin) {
    const cells = fromCells(result.pin);
    if (cells && result.pin.country) {
      drawPin(svg, result.pin.country, "pin-country", 1.6, "country pin (for comparison)");
    }
    drawPin(svg, result.pin.naive, "pin-naive", 2.6,
            cells ? "centre of the top cell" : "centre of the top country");
    drawPin(svg, result.pin.suggested, "pin-suggested", 2,
            cells ? "suggested pin (location head)" : "suggested pin");
  }
  withTooltip(svg);
}

const fromCells = (pin) => pin.source === "geocell";

function drawCells(svg, cells) {
  // The location head's likely cells: a translucent disc of each cell's radius around its
  // centre (an ellipse on this map: a degree of longitude shrinks with the latitude), more
  // opaque the likelier; the likeliest is drawn last, on top.
  const highest = cells.length ? cells[0].probability || 1 : 1;
  for (const cell of [...cells].reverse()) {
    const [cx, cy] = project([cell.lon, cell.lat]);
    const ry = cell.radius_km / KM_PER_DEGREE;
    const rx = ry / Math.max(Math.cos(cell.lat * Math.PI / 180), 0.1);
    const disc = svgElement("ellipse", { cx, cy, class: "cell" });
    Object.assign(disc.dataset, { rx: String(rx), ry: String(ry) });
    sizeCell(disc, CELL_MIN_RADIUS);
    disc.style.fillOpacity = (0.12 + 0.5 * Math.sqrt(cell.probability / highest)).toFixed(3);
    const country = state.model.names[cell.country] || cell.country;
    disc.dataset.label = `Cell in ${country}: ${percent(cell.probability)} ` +
      `(most of it within ${Math.round(cell.radius_km)} km of ${cell.lat.toFixed(2)}, ` +
      `${cell.lon.toFixed(2)})`;
    svg.append(disc);
  }
}

function sizeCell(disc, least) {
  // Its true size, or at least `least` map units across its shorter radius so it shows.
  const rx = parseFloat(disc.dataset.rx), ry = parseFloat(disc.dataset.ry);
  const grow = Math.max(1, least / Math.min(rx, ry));
  disc.setAttribute("rx", (rx * grow).toFixed(3));
  disc.setAttribute("ry", (ry * grow).toFixed(3));
}

function visible(probability, highest) {
  return Math.sqrt(probability / highest) >= 0.1;  // shade() is then clearly not white
}

function svgElement(tag, attributes) {
  const node = document.createElementNS(SVG_NS, tag);
  Object.entries(attributes).forEach(([k, v]) => node.setAttribute(k, v));
  return node;
}

function withTooltip(svg) {
  const tooltip = $("#tooltip");
  svg.addEventListener("mousemove", (e) => {
    const text = e.target.dataset && e.target.dataset.label;
    tooltip.hidden = !text;
    if (text) {
      tooltip.textContent = text;
      tooltip.style.left = `${e.clientX + 12}px`;
      tooltip.style.top = `${e.clientY + 12}px`;
    }
  });
  svg.addEventListener("mouseleave", () => { tooltip.hidden = true; });
}

function drawInset(inset, map, result) {
  // The same map zoomed on the likely countries and the pin: where small countries and
  // the pin's exact place can be seen.
  const boxes = new Map(state.world.map(([code, , box]) => [code, box]));
  const highest = result.top[0].probability || 1;
  const points = [];
  const cells = result.pin && fromCells(result.pin) && result.cells && result.cells.length;
  if (cells) {
    // A location head: zoomed on its likely cells (and the pin), not the whole countries.
    const top = result.cells[0].probability || 1;
    for (const cell of result.cells) {
      if (cell.probability < 0.25 * top) continue;
      const ry = cell.radius_km / KM_PER_DEGREE;
      const rx = ry / Math.max(Math.cos(cell.lat * Math.PI / 180), 0.1);
      points.push([cell.lon - rx, cell.lat - ry], [cell.lon + rx, cell.lat + ry]);
    }
    $("figcaption", inset.closest("figure")).textContent = "Zoomed on the likely cells and the pin";
  } else {
    for (const guess of result.top) {
      const box = guess.code && boxes.get(guess.code);
      if (box && guess.probability >= 0.25 * highest) points.push([box[0], box[1]], [box[2], box[3]]);
    }
  }
  if (result.pin) points.push([result.pin.suggested.lon, result.pin.suggested.lat]);
  if (!points.length) { inset.closest("figure").hidden = true; return; }
  const lons = points.map((p) => p[0]), lats = points.map((p) => p[1]);
  let [x0, x1] = [Math.min(...lons) + 180, Math.max(...lons) + 180];
  let [y0, y1] = [NORTH - Math.max(...lats), NORTH - Math.min(...lats)];
  const aspect = 360 / 142;  // the main map's, so the inset keeps its shape
  let width = Math.max(x1 - x0 + 8, (y1 - y0 + 8) * aspect, 16);
  if (width > 240) { inset.closest("figure").hidden = true; return; }  // no zoom to speak of
  const height = width / aspect, cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  inset.setAttribute("viewBox", `${cx - width / 2} ${cy - height / 2} ${width} ${height}`);
  for (const node of map.children) {
    if (node.classList.contains("speck")) continue;  // outlines are big enough here
    const copy = node.cloneNode(true);
    if (copy.classList.contains("cell")) sizeCell(copy, width / 150);
    else if (copy.tagName === "circle") copy.setAttribute("r", width / pinScale(copy));
    inset.append(copy);
  }
  withTooltip(inset);
}

// A pin's radius in the inset: this fraction of the inset's width.
const pinScale = (pin) => (pin.classList.contains("pin-naive") ? 45
                           : pin.classList.contains("pin-country") ? 75 : 60);

function drawPin(svg, pin, cls, radius, what) {
  const [x, y] = project([pin.lon, pin.lat]);
  const dot = document.createElementNS(SVG_NS, "circle");
  Object.entries({ cx: x, cy: y, r: radius, class: cls }).forEach(([k, v]) => dot.setAttribute(k, v));
  dot.dataset.label = `${what}: ${pin.lat.toFixed(2)}, ${pin.lon.toFixed(2)}, ` +
    `expected ${Math.round(pin.expected_score)} points`;
  svg.append(dot);
}

function showPins(box, pin) {
  if (!pin) {
    box.textContent = "No pin: the model's classes are not countries.";
    return;
  }
  const line = (kind, label, p) => element(
    "span", kind, element("span", `dot ${kind}`), `${label}: ${p.lat.toFixed(3)}, ` +
    `${p.lon.toFixed(3)}, `, element("strong", "", `${Math.round(p.expected_score)}`),
    " expected points");
  if (!fromCells(pin)) {
    box.replaceChildren(line("suggested", "Suggested pin", pin.suggested),
                        line("naive", "Centre of the top country", pin.naive));
    return;
  }
  box.replaceChildren(line("suggested", "Suggested pin (location head)", pin.suggested),
                      line("naive", "Centre of the top cell", pin.naive));
  if (pin.country) box.append(line("country", "Country pin (for comparison)", pin.country));
}

function element(tag, cls, ...children) {
  // Text goes in as text nodes: nothing from the server is ever parsed as HTML.
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  node.append(...children);
  return node;
}

function showHeatMaps(card, file, result) {
  const img = $(".heatmap", card), buttons = $(".cam-buttons", card), note = $(".cam-status", card);
  const original = objectURL(card, file);
  if (!state.model.heat_maps) {
    // The note stays: no handler below may clear it.
    $(".cam-label", card).hidden = true;
    note.textContent = "No heat maps: this server runs an ONNX model, which cannot show " +
      "what drove a guess (serve the PyTorch checkpoint for them).";
    img.addEventListener("load", () => Object.assign(img.dataset,
      { state: "ready", shows: "screenshot" }), { once: true });
    img.src = original;
    return;
  }
  const made = new Map();  // rank -> Promise of the object URL of its heat map, asked once
  let wanted = 0;  // the rank last asked for: only its image or failure may change the card
  const urlOf = async (rank) => (rank === 0 ? original : made.get(rank));
  // data-rank / data-state / data-shows say what the card shows (for tests, too).
  const ready = (rank) => {
    img.dataset.state = "ready";
    img.dataset.shows = rank === 0 ? "screenshot" : "heatmap";
    note.textContent = "";
  };
  img.addEventListener("load", async () => {
    if (img.src === await urlOf(wanted)) ready(wanted);
  });
  img.src = original;
  const select = async (rank) => {
    wanted = rank;
    for (const b of buttons.children) b.setAttribute("aria-pressed", String(b.dataset.rank === String(rank)));
    Object.assign(img.dataset, { rank: String(rank), state: "loading" });
    if (rank > 0 && !made.has(rank)) {
      made.set(rank, heatMap(card, file, result.top[rank - 1].country));
      note.textContent = "computing…";
    }
    try {
      const url = await urlOf(rank);
      if (wanted !== rank) return;  // another button was pressed meanwhile
      if (img.src === url && img.complete) ready(rank); else img.src = url;
    } catch (error) {
      made.delete(rank);  // pressing it again retries
      if (wanted !== rank) return;
      img.dataset.state = "failed";
      note.textContent = `heat map failed: ${error.message}`;
    }
  };
  result.top.forEach((guess, i) => buttons.append(button(`${i + 1}. ${guess.name}`, i + 1, select)));
  buttons.append(button("screenshot", 0, select));
  select(1);
}

async function heatMap(card, file, country) {
  // Stateless: the screenshot goes again with the guess, so any server process can answer.
  const form = new FormData();
  form.append("file", file, file.name || "pasted.png");
  form.append("country", country);
  const response = await fetch("/api/heatmap", { method: "POST", body: form });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.detail || `HTTP ${response.status}`);
  }
  return objectURL(card, await response.blob());
}

function button(text, rank, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.dataset.rank = String(rank);
  b.addEventListener("click", () => onClick(rank));
  return b;
}

// Leaving the page frees every image it holds.
window.addEventListener("pagehide", () => document.querySelectorAll(".card").forEach(removeCard));

start().catch((error) => { $("#model").textContent = `Could not reach the model: ${error.message}`; });
