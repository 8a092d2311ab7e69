// The geoconvnet page: send screenshots to /api/predict one at a time and show, for each,
// the top guesses, a world map shaded by probability with the GeoGuessr pins, and Grad-CAM
// heat maps of the top guesses (made on demand by /api/heatmap, the top one first).
"use strict";

const NORTH = 84;  // the map's top latitude (equirectangular, 1 unit = 1 degree, down to 58 S)
const SVG_NS = "http://www.w3.org/2000/svg";
const state = { model: null, world: null, queue: Promise.resolve() };

const $ = (selector, root = document) => root.querySelector(selector);
const percent = (p) => (100 * p).toFixed(p >= 0.995 || p < 0.0005 ? 0 : 1) + "%";
const project = ([lon, lat]) => [lon + 180, NORTH - lat];

async function getJSON(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

async function start() {
  const [model, world] = await Promise.all([getJSON("/api/model"), getJSON("/api/world")]);
  state.model = model;
  state.world = Object.entries(world).map(([code, rings]) => [code, ringsToPath(rings)]);
  const calibration = model.calibrated ? `calibrated (T=${model.temperature.toFixed(2)})`
                                       : "not calibrated";
  $("#model").textContent = `${model.name}: ${model.arch} (${model.format}), ` +
    `${model.class_names.length} countries, ${calibration}, on ${model.device}`;
  wireInputs();
}

function wireInputs() {
  const drop = $("#drop"), input = $("#files");
  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") input.click(); });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => { e.preventDefault(); addFiles(e.dataTransfer.files); });
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
    const body = await response.json();
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
    const item = document.createElement("li");
    item.dataset.country = guess.country;
    item.innerHTML = `<span class="rank">${i + 1}</span><span><span class="name"></span>` +
      `<div class="bar"></div></span><span class="p">${percent(guess.probability)}</span>`;
    $(".name", item).textContent = guess.country;
    $(".bar", item).style.width = `${Math.max(2, 100 * guess.probability / best)}%`;
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
  const line = (kind, label, p) =>
    `<span class="${kind}"><span class="dot ${kind}"></span>${label}: ` +
    `${p.lat.toFixed(3)}, ${p.lon.toFixed(3)}, <strong>${Math.round(p.expected_score)}</strong> ` +
    `expected points</span>`;
  box.innerHTML = line("suggested", "Suggested pin", pin.suggested) +
                  line("naive", "Centre of the top country", pin.naive);
}

function showHeatMaps(card, file, result) {
  const img = $(".heatmap", card), buttons = $(".cam-buttons", card), note = $(".cam-status", card);
  const original = URL.createObjectURL(file);
  const made = new Map();  // rank -> object URL of its heat map, made once
  let shown = original;  // the load event that counts is this one's (not an earlier image's)
  img.src = original;
  if (!state.model.heat_maps) {
    note.textContent = "no heat maps for an ONNX model (serve the PyTorch checkpoint)";
    return;
  }
  // data-rank / data-state say which map is shown and whether it has loaded (for tests, too).
  const select = async (rank) => {
    for (const b of buttons.children) b.setAttribute("aria-pressed", String(b.dataset.rank === String(rank)));
    img.dataset.rank = String(rank);
    img.dataset.state = "loading";
    note.textContent = rank === 0 || made.has(rank) ? "" : "computing…";
    try {
      if (rank > 0 && !made.has(rank)) made.set(rank, await heatMap(file, result.top[rank - 1].country));
      const url = rank === 0 ? original : made.get(rank);
      if (img.dataset.rank !== String(rank)) return;  // another button was pressed meanwhile
      if (img.src === url && img.complete) {
        img.dataset.state = "ready";
        note.textContent = "";
      } else {
        img.src = shown = url;
      }
    } catch (error) {
      img.dataset.state = "failed";
      note.textContent = `heat map failed: ${error.message}`;
    }
  };
  img.addEventListener("load", () => {
    if (img.src !== shown) return;
    img.dataset.state = "ready";
    note.textContent = "";
  });
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
