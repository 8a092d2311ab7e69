// The geoconvnet page: send screenshots to /api/predict one at a time and show, for each,
// the top guesses, a world map shaded by probability with the GeoGuessr pins, and Grad-CAM
// heat maps of the top guesses (made on demand by /api/heatmap, the top one first).
"use strict";

const NORTH = 84;  // the map's top latitude (equirectangular, 1 unit = 1 degree, down to 58 S)
const SVG_NS = "http://www.w3.org/2000/svg";
const state = { model: null, world: null, queue: null, ready: null };
// Files given before the model's description has arrived wait for it.
state.queue = new Promise((resolve) => { state.ready = resolve; });

const $ = (selector, root = document) => root.querySelector(selector);
const percent = (p) => (100 * p).toFixed(p >= 0.995 || p < 0.0005 ? 0 : 1) + "%";
const project = ([lon, lat]) => [lon + 180, NORTH - lat];

async function getJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

async function start() {
  wireInputs();
  const [model, world] = await Promise.all([getJSON("/api/model"), getJSON("/api/world")]);
  state.model = model;
  state.world = Object.entries(world).map(([code, rings]) => [code, ringsToPath(rings)]);
  const calibration = model.calibrated ? `calibrated (T=${model.temperature.toFixed(2)})`
                                       : "not calibrated";
  const classes = `${model.class_names.length} ${model.pin ? "countries" : "classes"}`;
  $("#model").textContent = `${model.name}: ${model.arch} (${model.format}), ${classes}, ` +
    `${calibration}, on ${model.device}`;
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
    state.queue = state.queue.then(() => analyse(file, card));
  }
}

function newCard(file) {
  const card = $("#card").content.firstElementChild.cloneNode(true);
  $(".filename", card).textContent = file.name || "pasted image";
  $("#results").prepend(card);
  return card;
}

async function analyse(file, card) {
  const form = new FormData();
  form.append("file", file, file.name || "pasted.png");
  const status = $(".status", card);
  try {
    const response = await fetch("/api/predict", { method: "POST", body: form });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    status.textContent = `${body.image.width}x${body.image.height}, view "${body.view}", ` +
      `${body.timings_ms.predict} ms + pin ${body.timings_ms.pin} ms`;
    show(card, file, body);
  } catch (error) {
    status.textContent = `Could not analyse this file: ${error.message}`;
    status.classList.add("error");
  }
}

function show(card, file, result) {
  $(".body", card).hidden = false;
  showGuesses(card, result.top);
  drawMap($(".map", card), result);
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
                         element("span", "", element("span", "name", guess.country), bar),
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

function drawMap(svg, result) {
  const byCode = new Map(result.probabilities.filter((g) => g.code).map((g) => [g.code, g]));
  const highest = result.top[0].probability || 1;
  const tooltip = $("#tooltip");
  for (const [code, d] of state.world) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    const guess = byCode.get(code);
    if (guess) {
      path.style.fill = shade(guess.probability, highest);
      path.dataset.label = `${guess.country}: ${percent(guess.probability)}`;
    } else {
      path.classList.add("other");
      path.dataset.label = `${code}: not one of the model's countries`;
    }
    path.dataset.code = code;
    svg.append(path);
  }
  svg.addEventListener("mousemove", (e) => {
    const label = e.target.dataset && e.target.dataset.label;
    tooltip.hidden = !label;
    if (label) {
      tooltip.textContent = label;
      tooltip.style.left = `${e.clientX + 12}px`;
      tooltip.style.top = `${e.clientY + 12}px`;
    }
  });
  svg.addEventListener("mouseleave", () => { tooltip.hidden = true; });
  if (result.pin) {
    drawPin(svg, result.pin.naive, "pin-naive", 2.6, "centre of the top country");
    drawPin(svg, result.pin.suggested, "pin-suggested", 2, "suggested pin");
  }
}

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
  box.replaceChildren(line("suggested", "Suggested pin", pin.suggested),
                      line("naive", "Centre of the top country", pin.naive));
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
  const original = URL.createObjectURL(file);
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
  if (!state.model.heat_maps) {
    note.textContent = "no heat maps for an ONNX model (serve the PyTorch checkpoint)";
    return;
  }
  const select = async (rank) => {
    wanted = rank;
    for (const b of buttons.children) b.setAttribute("aria-pressed", String(b.dataset.rank === String(rank)));
    Object.assign(img.dataset, { rank: String(rank), state: "loading" });
    if (rank > 0 && !made.has(rank)) {
      made.set(rank, heatMap(file, result.top[rank - 1].country));
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
  result.top.forEach((guess, i) => buttons.append(button(`${i + 1}. ${guess.country}`, i + 1, select)));
  buttons.append(button("screenshot", 0, select));
  select(1);
}

async function heatMap(file, country) {
  // Stateless: the screenshot goes again with the guess, so any server process can answer.
  const form = new FormData();
  form.append("file", file, file.name || "pasted.png");
  form.append("country", country);
  const response = await fetch("/api/heatmap", { method: "POST", body: form });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.detail || `HTTP ${response.status}`);
  }
  return URL.createObjectURL(await response.blob());
}

function button(text, rank, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.dataset.rank = String(rank);
  b.addEventListener("click", () => onClick(rank));
  return b;
}

start().catch((error) => { $("#model").textContent = `Could not reach the model: ${error.message}`; });
