// Word space: neighbours and analogies in a static word-vector table (GloVe), and 2-D maps
// (PCA, UMAP or t-SNE) of chosen words or of the text's contextual word vectors at one layer.
// Labels are placed around their dots so that none covers another label or dot.
import { post } from "../api.js";
import { el, svg, svgText } from "../draw.js";

const NAMES = { pca: "PCA", umap: "UMAP", tsne: "t-SNE" };
const form = { method: "pca", word: "paris", a: "man", b: "king", c: "woman", words: "king queen man woman prince princess paris france berlin germany rome italy" };

const AXES = { pca: ["PC 1", "PC 2"], umap: ["UMAP 1", "UMAP 2"], tsne: ["t-SNE 1", "t-SNE 2"] };
const CHAR = 7.4, LINE = 13, R = 4.5;  // label character width and height, dot radius (px)

// Where a label may go around its dot, nearest first: [dx, dy of the text's baseline, anchor].
const SPOTS = [[7, 4, "start"], [-7, 4, "end"], [0, -8, "middle"], [0, 17, "middle"]];
for (const dy of [13, 26, 39, 52]) {
  for (const [dx, anchor] of [[7, "start"], [-7, "end"]]) SPOTS.push([dx, 4 - dy, anchor], [dx, 4 + dy, anchor]);
}

// The box [x0, y0, x1, y1] a label of `width` takes at a spot around (cx, cy).
function box(cx, cy, width, [dx, dy, anchor]) {
  const x = cx + dx - (anchor === "end" ? width : anchor === "middle" ? width / 2 : 0);
  return [x, cy + dy - LINE + 3, x + width, cy + dy + 3];
}

const overlap = (a, b) => Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])) * Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));

// Each label at the first spot where it covers no other label, no dot and stays inside the
// picture; where none is free, at the spot it overlaps least, with a thin line to its dot.
function placeLabels(labels, dots, W, H) {
  const taken = dots.map(([cx, cy]) => [cx - R, cy - R, cx + R, cy + R]);
  return labels.map((l, i) => {
    const [cx, cy] = dots[i];
    const width = CHAR * l.length;
    const cost = (spot) => {
      const b = box(cx, cy, width, spot);
      const outside = b[0] < 0 || b[1] < 0 || b[2] > W || b[3] > H ? 1e6 : 0;
      return outside + taken.reduce((sum, t) => sum + overlap(b, t), 0);
    };
    const spot = SPOTS.find((s) => cost(s) === 0) ?? SPOTS.reduce((best, s) => (cost(s) < cost(best) ? s : best));
    const b = box(cx, cy, width, spot);
    taken.push(b);
    return { spot, box: b, far: Math.abs(spot[1] - 4) > LINE };
  });
}

function scatter(labels, points, id, method) {
  const W = 640, H = 380, pad = 40;
  const [xName, yName] = AXES[method] || AXES.pca;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const x = (v) => pad + ((v - x0) / (x1 - x0 || 1)) * (W - 2 * pad - 60);
  const y = (v) => H - pad - ((v - y0) / (y1 - y0 || 1)) * (H - 2 * pad);
  const axis = svg("g", { class: "axis" },
    svg("line", { x1: pad / 2, x2: W - pad / 2, y1: H - pad / 2, y2: H - pad / 2 }),
    svgText(W - pad / 2, H - pad / 2 - 4, xName, { "text-anchor": "end" }),
    svgText(pad / 2 + 4, pad / 2, yName));
  const dots = points.map(([px, py]) => [x(px), y(py)]);
  const placed = placeLabels(labels, dots, W, H);
  const groups = labels.map((l, i) => {
    const [cx, cy] = dots[i];
    const { spot: [dx, dy, anchor], box: b, far } = placed[i];
    return svg("g", { "data-label": l },
      far ? svg("line", { class: "leader", x1: cx, y1: cy, x2: anchor === "end" ? b[2] : b[0], y2: (b[1] + b[3]) / 2 }) : null,
      svg("circle", { cx, cy, r: R }),
      svgText(cx + dx, cy + dy, l, { "text-anchor": anchor }),
      svg("title", {}, document.createTextNode(l)));
  });
  return svg("svg", { class: "scatter", width: W, height: H, id, "data-method": method }, axis, ...groups);
}

function pairs(list, id) {
  return el("table", { id }, el("tbody", {}, ...list.map((p) => el("tr", {},
    el("td", { class: "tok", text: p.word }), el("td", { class: "num", text: p.score.toFixed(3) })))));
}

function guarded(out, fn) {
  return (e) => {
    e?.preventDefault();
    fn().catch((err) => out.replaceChildren(el("p", { class: "note", text: err.message })));
  };
}

function staticCard(name) {
  const word = el("input", { type: "text", class: "small", id: "nb-word", value: form.word, style: "width:9em" });
  const nbOut = el("div", { id: "nb-out" });
  const nb = guarded(nbOut, async () => {
    form.word = word.value;
    const d = await post("/api/neighbours", { model: name, word: form.word, k: 8 });
    nbOut.replaceChildren(pairs(d.neighbors, "neighbours"));
  });
  const [a, b, c] = ["a", "b", "c"].map((k) => el("input", { type: "text", class: "small", id: `an-${k}`, value: form[k], style: "width:7em" }));
  const anOut = el("div", { id: "an-out" });
  const an = guarded(anOut, async () => {
    Object.assign(form, { a: a.value, b: b.value, c: c.value });
    const d = await post("/api/analogy", { model: name, a: form.a, b: form.b, c: form.c, k: 5 });
    anOut.replaceChildren(el("p", {}, `${d.a} : ${d.b} :: ${d.c} : `, el("b", { text: d.answers[0].word })), pairs(d.answers, "analogy"));
  });
  const words = el("input", { type: "text", class: "small", id: "map-words", value: form.words, style: "width:48em" });
  const mapOut = el("div", { id: "map-out" });
  const map = guarded(mapOut, async () => {
    form.words = words.value;
    const d = await post("/api/words2d", { model: name, words: form.words.split(/[\s,]+/).filter(Boolean), method: form.method });
    mapOut.replaceChildren(scatter(d.labels, d.points, "words-map", d.method));
  });
  const card = el("div", { class: "card" },
    el("h2", { text: `Static word vectors: ${name}` }),
    el("p", { class: "note", text: "One vector per word, whatever the sentence. Similar words lie close (cosine), and differences between vectors carry relations: b − a + c lands near the word that is to c what b is to a." }),
    el("div", { class: "row" },
      el("div", { style: "min-width: 300px" }, el("h3", { text: "Nearest words" }), el("form", { class: "controls", onsubmit: nb }, word, el("button", { type: "submit", text: "Neighbours" })), nbOut),
      el("div", {}, el("h3", { text: "Analogy" }), el("form", { class: "controls", id: "analogy-form", onsubmit: an }, a, " : ", b, " :: ", c, " : ?", el("button", { type: "submit", text: "Solve" })), anOut)),
    el("h3", { text: `A map of chosen words (${NAMES[form.method]})` }),
    el("form", { class: "controls", onsubmit: map }, words, el("button", { type: "submit", text: "Map" })),
    mapOut);
  nb(); an(); map();
  return card;
}

async function contextualCard(state) {
  const out = el("div", { id: "ctx-map" });
  const n = state.info.n_layers;
  const layer = el("input", { type: "range", id: "map-layer", min: 0, max: n, step: 1, value: n });
  const shown = el("output", { text: n });
  const draw = guarded(out, async () => {
    shown.textContent = layer.value === "0" ? "emb" : layer.value;
    const d = await post("/api/project", { model: state.model, text: state.text, layer: +layer.value, method: form.method });
    out.replaceChildren(scatter(d.labels, d.points, "sentence-map", d.method));
  });
  layer.addEventListener("change", draw);
  layer.addEventListener("input", () => { shown.textContent = layer.value === "0" ? "emb" : layer.value; });
  draw();
  return el("div", { class: "card" },
    el("h2", { text: `The text's words as ${state.model} sees them` }),
    el("p", { class: "note", text: `Each word's contextual vector (its tokens averaged) at one layer, projected to 2-D with ${NAMES[form.method]}. Slide to layer 0 (input embeddings) to see the words before attention mixed them.` }),
    el("div", { class: "controls" }, el("label", {}, "layer ", layer, " ", shown)),
    out);
}

export async function render(root, state) {
  const table = state.models.find((m) => m.kind === "static");
  const method = el("select", { id: "projection", onchange: (e) => { form.method = e.target.value; state.drawn.delete("wordspace"); state.refresh(); } },
    ...state.projections.map((p) => new Option(NAMES[p] || p, p)));
  method.value = form.method;
  root.replaceChildren(
    el("div", { class: "controls" }, el("label", {}, "2-D projection ", method),
      el("span", { text: "PCA keeps the two directions of largest spread (distances stay comparable); UMAP and t-SNE keep each point's neighbours close (clusters show, distances between them do not mean much). A server's first UMAP map takes longer: umap-learn compiles its code then." })),
    table ? staticCard(table.name) : el("div", { class: "card" }, el("p", { class: "note", text: "No word-vector table is served; start the server with --models … glove-50 to explore neighbours and analogies." })),
    await contextualCard(state));
}
