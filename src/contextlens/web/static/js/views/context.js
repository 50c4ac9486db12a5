// Context: one word in several sentences — how similar its vectors stay, layer by layer (the
// "bank" curve), and which vocabulary words each vector is closest to at each layer.
import { post } from "../api.js";
import { el, svg, svgText } from "../draw.js";

const COLORS = ["#2f6fde", "#d9622b", "#12a37f", "#9b51e0", "#c0392b", "#7f8c8d"];
const form = {
  word: "bank",
  sentences: "She sat on the bank of the river and watched the water.\nThe boat drifted slowly toward the muddy bank.\nHe went to the bank to deposit his paycheck.",
};

function chart(cos, sentences) {
  const W = 560, H = 260, L = 48, B = 34, T = 12, R = 16;
  const n = cos[0].length;
  const lo = Math.max(-1, Math.floor((Math.min(...cos.flat()) - 0.05) * 10) / 10);
  const step = 1 - lo > 0.5 ? 0.2 : 0.1;
  const x = (l) => L + (l * (W - L - R)) / (n - 1);
  const y = (v) => T + ((1 - v) * (H - T - B)) / (1 - lo);
  const axis = svg("g", { class: "axis" });
  for (let l = 0; l < n; l += Math.ceil(n / 12)) {
    axis.append(svgText(x(l), H - B + 16, l === 0 ? "emb" : l, { "text-anchor": "middle" }),
      svg("line", { x1: x(l), x2: x(l), y1: H - B, y2: H - B + 4 }));
  }
  for (let v = lo; v <= 1.0001; v += step) {
    axis.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), "stroke-dasharray": "2 3" }),
      svgText(L - 6, y(v) + 4, v.toFixed(1), { "text-anchor": "end" }));
  }
  const mid = (T + H - B) / 2;
  axis.append(svgText((L + W - R) / 2, H - 4, "layer", { "text-anchor": "middle" }),
    svgText(12, mid, "cosine with sentence 1", { transform: `rotate(-90 12 ${mid})`, "text-anchor": "middle" }));
  const lines = cos.map((row, i) => svg("polyline", {
    points: row.map((v, l) => `${x(l)},${y(v)}`).join(" "), fill: "none", stroke: COLORS[(i + 1) % COLORS.length], "stroke-width": 2.5,
  }, svg("title", {}, document.createTextNode(sentences[i + 1]))));
  return svg("svg", { width: W, height: H, id: "shift-chart" }, axis, ...lines);
}

export async function render(root, state) {
  const word = el("input", { type: "text", class: "small", id: "shift-word", value: form.word, style: "width:10em" });
  const sentences = el("textarea", { id: "shift-sentences", rows: 4 }, form.sentences);
  const result = el("div", { id: "shift-result" });
  const run = async (e) => {
    e?.preventDefault();
    form.word = word.value;
    form.sentences = sentences.value;
    const list = form.sentences.split("\n").map((s) => s.trim()).filter(Boolean);
    const d = await post("/api/shift", { model: state.model, word: form.word, sentences: list, k: 3 });
    const legend = el("div", { class: "legend" }, ...list.slice(1).map((s, i) => el("span", {},
      el("i", { style: `background:${COLORS[(i + 1) % COLORS.length]}` }), `sentence ${i + 2}`)));
    const rows = d.nearest[0].map((_, l) => el("tr", {}, el("td", { class: "num", text: l === 0 ? "emb" : l }),
      ...d.nearest.map((per) => el("td", { text: per[l].join(", ") }))));
    result.replaceChildren(
      el("div", { class: "row" },
        el("div", {}, chart(d.cosine, list), legend),
        el("div", {},
          el("h3", { text: "Sentences" }),
          el("ol", { class: "note" }, ...list.map((s) => el("li", { text: s }))))),
      el("h3", { text: `Nearest vocabulary words to “${d.word}” at each layer` }),
      el("table", { id: "shift-nearest" },
        el("thead", {}, el("tr", {}, el("th", { text: "layer" }), ...list.map((_, i) => el("th", { text: `sentence ${i + 1}` })))),
        el("tbody", {}, ...rows)));
  };
  const f = el("form", { class: "controls", onsubmit: (e) => run(e).catch((err) => { result.replaceChildren(el("p", { class: "note", text: err.message })); }) },
    el("label", {}, "word ", word), el("button", { type: "submit", text: "Compare" }));
  root.replaceChildren(el("div", { class: "card" },
    el("h2", { text: "The same word in different sentences" }),
    el("p", { class: "note", text: "At the embedding layer a word has one vector whatever surrounds it (plus its position, for models with a position table). Layer by layer attention mixes the other words in, so the same word in different contexts drifts apart. One sentence per line; the first is the reference." }),
    f, sentences, result));
  await run();
}
