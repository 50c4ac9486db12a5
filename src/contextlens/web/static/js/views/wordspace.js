// Word space: neighbours and analogies in a static word-vector table (GloVe), and 2-D maps
// (PCA) of chosen words or of the text's contextual word vectors at one layer.
import { post } from "../api.js";
import { el, svg, svgText } from "../draw.js";

const form = { method: "pca", word: "paris", a: "man", b: "king", c: "woman", words: "king queen man woman prince princess paris france berlin germany rome italy" };

function scatter(labels, points, id) {
  const W = 620, H = 360, pad = 36, right = 110;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const x = (v) => pad + ((v - x0) / (x1 - x0 || 1)) * (W - pad - right);
  const y = (v) => H - pad - ((v - y0) / (y1 - y0 || 1)) * (H - 2 * pad);
  const axis = svg("g", { class: "axis" },
    svg("line", { x1: pad / 2, x2: W - pad / 2, y1: H - pad / 2, y2: H - pad / 2 }),
    svgText(W - pad / 2, H - pad / 2 - 4, "PC 1", { "text-anchor": "end" }),
    svgText(pad / 2 + 4, pad / 2, "PC 2"));
  const placed = [];  // label boxes drawn so far: a label moves up or down until it fits
  const fits = (bx, by, w) => placed.every(([px, py, pw]) => bx + w < px || px + pw < bx || Math.abs(by - py) >= 13);
  const dots = labels.map((l, i) => {
    const cx = x(points[i][0]), cy = y(points[i][1]);
    const w = 7.5 * l.length;
    const dy = [0, 13, -13, 26, -26, 39, -39].find((d) => fits(cx + 7, cy + d, w)) ?? 0;
    placed.push([cx + 7, cy + dy, w]);
    return svg("g", { "data-label": l },
      svg("circle", { cx, cy, r: 4.5 }),
      svgText(cx + 7, cy + dy + 4, l),
      svg("title", {}, document.createTextNode(l)));
  });
  return svg("svg", { class: "scatter", width: W, height: H, id }, axis, ...dots);
}

function pairs(list, id) {
  return el("table", { id }, el("tbody", {}, ...list.map((p) => el("tr", {},
    el("td", { class: "tok", text: p.word }), el("td", { class: "num", text: p.cosine.toFixed(3) })))));
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
    nbOut.replaceChildren(pairs(d.neighbours, "neighbours"));
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
    mapOut.replaceChildren(scatter(d.labels, d.points, "words-map"));
  });
  const card = el("div", { class: "card" },
    el("h2", { text: `Static word vectors: ${name}` }),
    el("p", { class: "note", text: "One vector per word, whatever the sentence. Similar words lie close (cosine), and differences between vectors carry relations: b − a + c lands near the word that is to c what b is to a." }),
    el("div", { class: "row" },
      el("div", { style: "min-width: 300px" }, el("h3", { text: "Nearest words" }), el("form", { class: "controls", onsubmit: nb }, word, el("button", { type: "submit", text: "Neighbours" })), nbOut),
      el("div", {}, el("h3", { text: "Analogy" }), el("form", { class: "controls", id: "analogy-form", onsubmit: an }, a, " : ", b, " :: ", c, " : ?", el("button", { type: "submit", text: "Solve" })), anOut)),
    el("h3", { text: `A map of chosen words (${form.method.toUpperCase()})` }),
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
    out.replaceChildren(scatter(d.labels, d.points, "sentence-map"));
  });
  layer.addEventListener("change", draw);
  layer.addEventListener("input", () => { shown.textContent = layer.value === "0" ? "emb" : layer.value; });
  draw();
  return el("div", { class: "card" },
    el("h2", { text: `The text's words as ${state.model} sees them` }),
    el("p", { class: "note", text: `Each word's contextual vector (its tokens averaged) at one layer, projected to 2-D with ${form.method.toUpperCase()}. Slide to layer 0 (input embeddings) to see the words before attention mixed them.` }),
    el("div", { class: "controls" }, el("label", {}, "layer ", layer, " ", shown)),
    out);
}

export async function render(root, state) {
  const table = state.models.find((m) => m.kind === "static");
  const method = el("select", { id: "projection", onchange: (e) => { form.method = e.target.value; state.drawn.delete("wordspace"); state.refresh(); } },
    ...state.projections.map((p) => new Option(p.toUpperCase(), p)));
  method.value = form.method;
  root.replaceChildren(
    el("div", { class: "controls" }, el("label", {}, "2-D projection ", method),
      state.projections.includes("umap") ? null : el("span", { text: "(UMAP appears here when umap-learn is installed)" })),
    table ? staticCard(table.name) : el("div", { class: "card" }, el("p", { class: "note", text: "No word-vector table is served; start the server with --models … glove-50 to explore neighbours and analogies." })),
    await contextualCard(state));
}
