// smapgan app: draws boxes and placements on the images they refer to, clears brush strokes, shows Stop
// while a refinement runs and closes stale error pop-ups.
// Runs once (a hidden gr.HTML's js_on_load); `props.config` is JSON from smapgan.app.builder:
// {css, display, overlays: [{source, target, kind: "points" | "box", editor: bool}]}.
const cfg = JSON.parse(props.config);
if (!document.getElementById("smapgan-style")) {
  const style = document.createElement("style");
  style.id = "smapgan-style";
  style.textContent = cfg.css;
  document.head.appendChild(style);
}

function numbers(text) {
  return (text || "").split(";").map((part) => part.split(/[\s,]+/).filter(Boolean).map(Number))
    .filter((values) => values.length && values.every((v) => Number.isFinite(v) && v >= 0 && v <= 1));
}

// The square the picture occupies on screen (page coordinates), or null when not shown.
function pictureRect(root, editor) {
  if (editor) {
    const canvas = root.querySelector("canvas");
    if (!canvas) return null;
    const r = canvas.getBoundingClientRect();
    if (r.width < 2) return null;
    const zoom = (root.innerText.match(/(\d+)%/) || [null, "100"])[1] / 100;
    const side = cfg.display * zoom;
    return { x: r.left + (r.width - side) / 2 + scrollX, y: r.top + (r.height - side) / 2 + scrollY, side };
  }
  const img = root.querySelector("img");
  if (!img || !img.naturalWidth) return null;
  const r = img.getBoundingClientRect();
  if (r.width < 2) return null;
  const side = Math.min(r.width, r.height);
  return { x: r.left + (r.width - side) / 2 + scrollX, y: r.top + (r.height - side) / 2 + scrollY, side };
}

const layer = document.createElement("div");
layer.id = "smapgan-overlays";
layer.style.cssText = "position:absolute;left:0;top:0;width:0;height:0;pointer-events:none;";
document.body.appendChild(layer);

function draw() {
  const html = [];
  for (const o of cfg.overlays) {
    const root = document.getElementById(o.target);
    const field = document.querySelector(`#${o.source} textarea, #${o.source} input`);
    if (!root || !field) continue;
    const rect = pictureRect(root, o.editor);
    if (!rect) continue;
    const values = numbers(field.value);
    if (o.kind === "points") {
      values.filter((v) => v.length === 2).forEach((v, i) => {
        html.push(`<div class="smapgan-marker" data-for="${o.source}" data-index="${i}" ` +
          `style="left:${rect.x + v[0] * rect.side}px;top:${rect.y + v[1] * rect.side}px"></div>`);
      });
    } else if (values.length === 1 && values[0].length === 4) {
      const [x0, y0, x1, y1] = values[0];
      if (x1 > x0 && y1 > y0) {
        html.push(`<div class="smapgan-box" data-for="${o.source}" style="left:${rect.x + x0 * rect.side}px;` +
          `top:${rect.y + y0 * rect.side}px;width:${(x1 - x0) * rect.side}px;height:${(y1 - y0) * rect.side}px"></div>`);
      }
    }
  }
  const next = html.join("");
  if (layer.innerHTML !== next) layer.innerHTML = next;
}
// An editor takes strokes only once its picture has loaded: until then (its upload prompt shown, or
// its value still arriving) the canvas is blocked and says so; `data-smapgan-ready` tells tests.
function markEditors() {
  for (const editor of document.querySelectorAll(".smapgan-editor")) {
    const ready = !!editor.querySelector("canvas") && !editor.querySelector(".empty") &&
      !!editor.querySelector('button[aria-label="Brush"]') && editor.dataset.smapganClearing !== "1";
    const flag = ready ? "1" : "0";
    if (editor.dataset.smapganReady !== flag) editor.dataset.smapganReady = flag;
  }
}
// Stop is for a refinement: the page is marked while one shows its progress (ui.css shows Stop then).
function markRefining() {
  const busy = [...document.querySelectorAll('[data-testid="status-tracker"]')]
    .some((tracker) => /refining .*step \d+\/\d+/.test(tracker.textContent));
  const flag = busy ? "1" : "0";
  if (document.body.dataset.smapganRefining !== flag) document.body.dataset.smapganRefining = flag;
}
setInterval(() => { markEditors(); markRefining(); draw(); }, 150);

// A new run makes the error pop-ups of earlier ones stale: they are closed when Run is clicked.
document.addEventListener("click", (event) => {
  const button = event.target instanceof Element && event.target.closest("button[id$='-run']");
  if (!button) return;
  for (const close of document.querySelectorAll('.toast-body.error [data-testid="toast-close"]')) close.click();
}, true);

// "Clear mask": undo every stroke of an editor. Its history also holds the loading of its picture:
// when an undo empties the canvas, one redo brings the picture back (no reload from the server).
// While it runs the canvas refuses strokes (a stroke drawn meanwhile would be undone with the
// others); `data-smapgan-clears` counts the clears done, for tests.
const tick = () => new Promise((resolve) => setTimeout(resolve, 30));
window.smapganClearMask = async function (id) {
  const root = document.getElementById(id);
  if (!root) return;
  root.dataset.smapganClearing = "1";
  markEditors();
  try {
    for (let i = 0; i < 500; i++) {
      const undo = root.querySelector('button[aria-label="Undo"]');
      if (!undo || undo.disabled) break;
      undo.click();
      await tick();
      if (root.querySelector(".empty") || !root.querySelector('button[aria-label="Brush"]')) {
        const redo = root.querySelector('button[aria-label="Redo"]');
        if (redo && !redo.disabled) redo.click();
        break;
      }
    }
    // the picture back on the canvas before strokes are taken again
    for (let i = 0; i < 100 && (root.querySelector(".empty") || !root.querySelector("canvas")); i++) await tick();
  } finally {
    delete root.dataset.smapganClearing;
    root.dataset.smapganClears = String(Number(root.dataset.smapganClears || 0) + 1);
    markEditors();
  }
};
