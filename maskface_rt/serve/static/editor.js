// The mask editor: paint a label map with the 19 CelebAMask-HQ classes and see the faces update.
// Plain browser JavaScript, no build step; it talks only to this server (/v1/...).
"use strict";

const SIZE = 256;             // label map resolution (the examples'); the server resizes to the model's size
const UNDO_LIMIT = 50;
const DEBOUNCE_MS = 300;

const state = {
  classes: [],                // [{label, name, color: [r, g, b]}] from /v1/model
  labels: new Uint8Array(SIZE * SIZE),
  current: 13,                // hair
  undo: [], redo: [],
  reference: null,            // File: style from this photo instead of seeds
  faces: [],                  // [{style, url}]
  selected: 0,                // index into faces
  request: 0,                 // number of the latest faces request (older answers are dropped)
  timer: null,
};

const $ = (id) => document.getElementById(id);
const canvas = $("mask");
const ctx = canvas.getContext("2d");

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function failure(response) {
  try { return (await response.json()).detail; } catch { return `${response.status} ${response.statusText}`; }
}

// ---------------------------------------------------------------- drawing

function render() {
  const image = ctx.createImageData(SIZE, SIZE);
  for (let i = 0; i < state.labels.length; i++) {
    const [r, g, b] = state.classes[state.labels[i]].color;
    image.data.set([r, g, b, 255], i * 4);
  }
  ctx.putImageData(image, 0, 0);
}

function snapshot() {
  state.undo.push(state.labels.slice());
  if (state.undo.length > UNDO_LIMIT) state.undo.shift();
  state.redo = [];
}

function changed() {
  render();
  scheduleFaces();
}

function tool() { return document.querySelector("input[name=tool]:checked").value; }
function paintLabel() { return tool() === "eraser" ? 0 : state.current; }

function stamp(cx, cy, radius, label) {
  const r2 = radius * radius;
  for (let y = Math.max(0, Math.floor(cy - radius)); y <= Math.min(SIZE - 1, Math.ceil(cy + radius)); y++) {
    for (let x = Math.max(0, Math.floor(cx - radius)); x <= Math.min(SIZE - 1, Math.ceil(cx + radius)); x++) {
      if ((x - cx) ** 2 + (y - cy) ** 2 <= r2) state.labels[y * SIZE + x] = label;
    }
  }
}

function line(from, to, label) {
  const radius = Number($("brush-size").value) / 2;
  const steps = Math.max(1, Math.ceil(Math.hypot(to.x - from.x, to.y - from.y) / Math.max(1, radius / 2)));
  for (let i = 0; i <= steps; i++) {
    stamp(from.x + (to.x - from.x) * i / steps, from.y + (to.y - from.y) * i / steps, radius, label);
  }
}

function fill(start, label) {
  const target = state.labels[start.y * SIZE + start.x];
  if (target === label) return;
  const stack = [start.y * SIZE + start.x];
  while (stack.length) {
    const i = stack.pop();
    if (state.labels[i] !== target) continue;
    state.labels[i] = label;
    const x = i % SIZE;
    if (x > 0) stack.push(i - 1);
    if (x < SIZE - 1) stack.push(i + 1);
    if (i >= SIZE) stack.push(i - SIZE);
    if (i < SIZE * (SIZE - 1)) stack.push(i + SIZE);
  }
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  return {
    x: Math.min(SIZE - 1, Math.max(0, Math.floor((event.clientX - box.left) * SIZE / box.width))),
    y: Math.min(SIZE - 1, Math.max(0, Math.floor((event.clientY - box.top) * SIZE / box.height))),
  };
}

let last = null;
canvas.addEventListener("pointerdown", (event) => {
  snapshot();
  const p = point(event);
  if (tool() === "fill") {
    fill(p, state.current);
    changed();
    return;
  }
  canvas.setPointerCapture(event.pointerId);
  last = p;
  line(p, p, paintLabel());
  render();
});
canvas.addEventListener("pointermove", (event) => {
  if (!last) return;
  const p = point(event);
  line(last, p, paintLabel());
  last = p;
  render();
});
for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    if (!last) return;
    last = null;
    changed();
  });
}

function undo() {
  if (!state.undo.length) return;
  state.redo.push(state.labels);
  state.labels = state.undo.pop();
  changed();
}

function redo() {
  if (!state.redo.length) return;
  state.undo.push(state.labels);
  state.labels = state.redo.pop();
  changed();
}

$("undo").onclick = undo;
$("redo").onclick = redo;
$("clear").onclick = () => { snapshot(); state.labels.fill(0); changed(); };
document.addEventListener("keydown", (event) => {
  if (!(event.ctrlKey || event.metaKey)) return;
  if (event.key === "z") { event.preventDefault(); undo(); }
  if (event.key === "y") { event.preventDefault(); redo(); }
});
$("brush-size").oninput = () => { $("brush-size-value").textContent = $("brush-size").value; };

function buildPalette() {
  for (const cls of state.classes) {
    const button = document.createElement("button");
    button.dataset.label = cls.label;
    button.dataset.name = cls.name;
    button.innerHTML = `<span class="swatch" style="background: rgb(${cls.color})"></span>${cls.label} ${cls.name}`;
    button.onclick = () => selectClass(cls.label);
    $("palette").append(button);
  }
  selectClass(state.current);
}

function selectClass(label) {
  state.current = label;
  for (const button of $("palette").children) {
    button.classList.toggle("selected", Number(button.dataset.label) === label);
  }
  if (tool() === "eraser") document.querySelector("input[value=brush]").checked = true;
}

// ---------------------------------------------------------------- masks in and out

function colourBlob() {
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// Any mask the server reads -> the label map at SIZE x SIZE (the server decodes: same code as maskface generate).
async function loadMask(blob, name) {
  const form = new FormData();
  form.append("mask", blob, name);
  form.append("size", String(SIZE));
  const response = await fetch("/v1/labels", { method: "POST", body: form });
  if (!response.ok) { status(await failure(response), true); return; }
  const bitmap = await createImageBitmap(await response.blob());
  const scratch = new OffscreenCanvas(SIZE, SIZE).getContext("2d");
  scratch.drawImage(bitmap, 0, 0);
  const rgba = scratch.getImageData(0, 0, SIZE, SIZE).data;
  snapshot();
  for (let i = 0; i < state.labels.length; i++) state.labels[i] = rgba[i * 4];
  status(`opened ${name}`);
  changed();
}

async function loadExample(name) {
  const response = await fetch(`/static/examples/${encodeURIComponent(name)}`);
  await loadMask(await response.blob(), name);
}

function download(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

$("examples").onchange = () => loadExample($("examples").value);
$("upload-mask").onchange = () => {
  const file = $("upload-mask").files[0];
  if (file) loadMask(file, file.name);
};
$("download-colors").onclick = async () => download(await colourBlob(), "mask_color.png");
$("download-labels").onclick = async () => {
  const form = new FormData();
  form.append("mask", await colourBlob(), "mask.png");
  const response = await fetch("/v1/labels", { method: "POST", body: form });
  if (!response.ok) { status(await failure(response), true); return; }
  download(await response.blob(), "mask_labels.png");
};

// ---------------------------------------------------------------- faces

function scheduleFaces() {
  clearTimeout(state.timer);
  state.timer = setTimeout(updateFaces, DEBOUNCE_MS);
}

async function updateFaces() {
  const number = ++state.request;
  const form = new FormData();
  form.append("mask", await colourBlob(), "mask.png");
  if (state.reference) {  // the photo's style: the service refuses styles or seed beside it
    form.append("reference", state.reference, state.reference.name);
  } else {
    const count = Math.min(8, Math.max(1, Number($("styles").value) || 1));
    form.append("styles", Array.from({ length: count }, (_, k) => k).join(","));
    form.append("seed", String(Math.max(0, Number($("seed").value) || 0)));
  }
  const response = await fetch("/v1/faces", { method: "POST", body: form, headers: { Accept: "application/json" } });
  if (number !== state.request) return;  // a newer request is on its way
  if (!response.ok) { status(await failure(response), true); return; }
  const answer = await response.json();
  state.faces = answer.faces.map((f) => ({ style: f.style, url: `data:image/png;base64,${f.png_base64}` }));
  state.selected = Math.min(state.selected, state.faces.length - 1);
  showFaces();
  status("");
  document.body.dataset.facesVersion = String(number);
}

function showFaces() {
  $("faces").replaceChildren(...state.faces.map((face, i) => {
    const img = document.createElement("img");
    img.src = face.url;
    img.alt = `face, style ${face.style}`;
    img.title = `style ${face.style}`;
    img.dataset.style = face.style;
    img.classList.toggle("selected", i === state.selected);
    img.onclick = () => { state.selected = i; showFaces(); };
    return img;
  }));
}

$("seed").oninput = scheduleFaces;
$("styles").oninput = scheduleFaces;
$("upload-reference").onchange = () => {
  state.reference = $("upload-reference").files[0] || null;
  $("clear-reference").disabled = !state.reference;
  scheduleFaces();
};
$("clear-reference").onclick = () => {
  state.reference = null;
  $("upload-reference").value = "";
  $("clear-reference").disabled = true;
  scheduleFaces();
};
$("download-face").onclick = async () => {
  const face = state.faces[state.selected];
  if (!face) return;
  download(await (await fetch(face.url)).blob(), `face_s${face.style}.png`);
};

// ---------------------------------------------------------------- start

async function start() {
  const model = await (await fetch("/v1/model")).json();
  state.classes = model.classes;
  $("model").textContent = `${model.backend}, ${model.img_size}x${model.img_size}`;
  buildPalette();
  const examples = await (await fetch("/v1/examples")).json();
  for (const name of examples) $("examples").append(new Option(name, name));
  render();
  if (examples.length) await loadExample(examples[0]);
  else changed();
  state.undo = [];
}

start().catch((error) => status(String(error), true));
