// Context: one word in several sentences — how similar its vectors stay, layer by layer (the
// "bank" curve), and which vocabulary words each vector is closest to at each layer; and, in
// the typed text, which candidate a pronoun attends to, layer by layer. Left empty, the pronoun
// and its candidates are proposed by the server from the text.
import { post } from "../api.js";
import { el, svg, svgText } from "../draw.js";

const COLORS = ["#2f6fde", "#d9622b", "#12a37f", "#9b51e0", "#c0392b", "#7f8c8d"];
const form = {
  word: "bank",
  shiftOccurrence: "",
  sentences: "She sat on the bank of the river and watched the water.\nThe boat drifted slowly toward the muddy bank.\nHe went to the bank to deposit his paycheck.",
  text: null,  // the text the pronoun fields were filled in for: a new text empties them
  pronoun: "",
  occurrence: "",
  candidates: "",
};

const number = (value) => (value === "" ? null : +value);

// series: one [n] array per line; xLabels: [n]; a legend with `names`.
function lineChart(series, names, xLabels, yLabel, id) {
  const W = 560, H = 260, L = 48, B = 34, T = 12, R = 16;
  const n = xLabels.length;
  const values = series.flat();
  const hi = Math.min(1, Math.ceil((Math.max(...values) + 0.02) * 10) / 10);
  const least = Math.min(...values);
  const lo = Math.max(least >= 0 ? 0 : -1, Math.floor((least - 0.05) * 10) / 10);
  const step = hi - lo > 0.5 ? 0.2 : 0.1;
  const x = (i) => L + (i * (W - L - R)) / Math.max(n - 1, 1);
  const y = (v) => T + ((hi - v) * (H - T - B)) / (hi - lo || 1);
  const axis = svg("g", { class: "axis" });
  for (let i = 0; i < n; i += Math.ceil(n / 12)) {
    axis.append(svgText(x(i), H - B + 16, xLabels[i], { "text-anchor": "middle" }),
      svg("line", { x1: x(i), x2: x(i), y1: H - B, y2: H - B + 4 }));
  }
  for (let v = lo; v <= hi + 1e-4; v += step) {
    axis.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), "stroke-dasharray": "2 3" }),
      svgText(L - 6, y(v) + 4, v.toFixed(1), { "text-anchor": "end" }));
  }
  const mid = (T + H - B) / 2;
  axis.append(svgText((L + W - R) / 2, H - 4, "layer", { "text-anchor": "middle" }),
    svgText(12, mid, yLabel, { transform: `rotate(-90 12 ${mid})`, "text-anchor": "middle" }));
  const lines = series.map((row, i) => svg("polyline", {
    points: row.map((v, j) => `${x(j)},${y(v)}`).join(" "), fill: "none", stroke: COLORS[(i + 1) % COLORS.length], "stroke-width": 2.5,
  }, svg("title", {}, document.createTextNode(names[i]))));
  return el("div", {},
    svg("svg", { width: W, height: H, id }, axis, ...lines),
    el("div", { class: "legend" }, ...names.map((name, i) => el("span", {},
      el("i", { style: `background:${COLORS[(i + 1) % COLORS.length]}` }), name))));
}

const layerNames = (n, withEmbeddings) => Array.from({ length: n }, (_, i) => (withEmbeddings ? (i === 0 ? "emb" : `${i}`) : `${i + 1}`));
const columns = (matrix) => matrix[0].map((_, c) => matrix.map((row) => row[c]));
// [heads][candidates] → [candidates]: the heads' average
const headMean = (heads) => heads[0].map((_, c) => heads.reduce((sum, h) => sum + h[c], 0) / heads.length);

function failing(out, fn) {
  return (e) => {
    e?.preventDefault();
    return fn().catch((err) => out.replaceChildren(el("p", { class: "note", text: err.message })));
  };
}

function shiftCard(state) {
  const word = el("input", { type: "text", class: "small", id: "shift-word", value: form.word, style: "width:10em" });
  const occurrence = el("input", { type: "number", class: "small", id: "shift-occurrence", min: 1, value: form.shiftOccurrence, placeholder: "1, 2, …", style: "width:6em" });
  const sentences = el("textarea", { id: "shift-sentences", rows: 4 }, form.sentences);
  const result = el("div", { id: "shift-result" });
  const run = failing(result, async () => {
    Object.assign(form, { word: word.value, shiftOccurrence: occurrence.value, sentences: sentences.value });
    const list = form.sentences.split("\n").map((s) => s.trim()).filter(Boolean);
    const d = await post("/api/shift", { model: state.model, word: form.word, sentences: list, occurrence: number(form.shiftOccurrence), k: 3 });
    result.replaceChildren(
      el("div", { class: "row" },
        lineChart(list.slice(1).map((_, i) => d.cosine.map((layer) => layer[0][i + 1])), list.slice(1).map((_, i) => `sentence ${i + 2}`), layerNames(d.cosine.length, true), "cosine with sentence 1", "shift-chart"),
        el("div", {}, el("h3", { text: "Sentences" }), el("ol", { class: "note" }, ...list.map((s) => el("li", { text: s }))))),
      el("h3", { text: `Nearest vocabulary words to “${d.word}” at each layer` }),
      d.nearest_note ? el("p", { class: "note", id: "shift-nearest-note", text: `Not shown for ${state.model}: ${d.nearest_note}.` }) : nearestTable(d.layers, list));
  });
  const card = el("div", { class: "card" },
    el("h2", { text: "The same word in different sentences" }),
    el("p", { class: "note", text: "At the embedding layer a word has one vector whatever surrounds it (plus its position, for models with a position table). Layer by layer attention mixes the other words in, so the same word in different contexts drifts apart. One sentence per line; the first is the reference. When a sentence has the word twice, say which occurrence to follow." }),
    el("form", { class: "controls", onsubmit: run },
      el("label", {}, "word ", word), el("label", {}, "occurrence ", occurrence), el("button", { type: "submit", text: "Compare" })),
    sentences, result);
  return [card, run];
}

// layers: [{layer, nearest: [sentence][k] of {word, cosine}}]
function nearestTable(layers, list) {
  const rows = layers.map((layer, l) => el("tr", {}, el("td", { class: "num", text: l === 0 ? "emb" : l }),
    ...layer.nearest.map((near) => el("td", { text: near.map((x) => x.word).join(", ") }))));
  return el("table", { id: "shift-nearest" },
    el("thead", {}, el("tr", {}, el("th", { text: "layer" }), ...list.map((_, i) => el("th", { text: `sentence ${i + 1}` })))),
    el("tbody", {}, ...rows));
}

function corefCard(state) {
  if (form.text !== state.text) Object.assign(form, { text: state.text, pronoun: "", occurrence: "", candidates: "" });
  const pronoun = el("input", { type: "text", class: "small", id: "coref-pronoun", value: form.pronoun, placeholder: "from the text", style: "width:8em" });
  const occurrence = el("input", { type: "number", class: "small", id: "coref-occurrence", min: 1, value: form.occurrence, placeholder: "first", style: "width:6em" });
  const candidates = el("input", { type: "text", class: "small", id: "coref-candidates", value: form.candidates, placeholder: "from the text", style: "width:22em" });
  const result = el("div", { id: "coref-result" });
  const run = failing(result, async () => {
    Object.assign(form, { pronoun: pronoun.value.trim(), occurrence: occurrence.value, candidates: candidates.value });
    const names = form.candidates.split(",").map((c) => c.trim()).filter(Boolean);
    const d = await post("/api/coref", {
      model: state.model, text: state.text, pronoun: form.pronoun || null,
      occurrence: number(form.occurrence), candidates: names.length ? names : null,
    });
    const who = d.scores.pronoun.text;
    const attention = d.scores.attention.map(headMean);  // [layers][candidates]
    pronoun.placeholder = who;
    candidates.placeholder = d.given.join(", ");
    result.replaceChildren(
      d.proposed ? el("p", { class: "note", id: "coref-proposed", text: `Candidates proposed from the text (the content words before “${who}”, nouns after “the”/“a” first): ${d.given.join(", ")}. Type your own to change them.` }) : null,
      el("div", { class: "row" },
        lineChart(columns(attention), d.given, layerNames(attention.length, false), `attention of “${who}” (heads averaged)`, "coref-attention"),
        lineChart(columns(d.scores.similarity), d.given, layerNames(d.scores.similarity.length, true), `cosine with “${who}”`, "coref-similarity")));
  });
  const card = el("div", { class: "card" },
    el("h2", { text: "Who is the pronoun? (in the text above)" }),
    el("p", { class: "note", text: "How much the pronoun attends to each candidate, per layer, and how similar their vectors become. Attention is a clue, not a proof: the model may carry the answer in other ways. Leave the fields empty to let the text propose them; when the pronoun occurs more than once, say which occurrence." }),
    el("form", { class: "controls", onsubmit: run },
      el("label", {}, "pronoun ", pronoun), el("label", {}, "occurrence ", occurrence),
      el("label", {}, "candidates ", candidates), el("button", { type: "submit", text: "Score" })),
    result);
  return [card, run];
}

export async function render(root, state) {
  const [shift, runShift] = shiftCard(state);
  const [coref, runCoref] = corefCard(state);
  root.replaceChildren(shift, coref);
  await Promise.all([runShift(), runCoref()]);
}
