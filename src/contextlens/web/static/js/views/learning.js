// Learning: word2vec trained from scratch on a text (a toy corpus about animals and vehicles
// unless you paste your own), the cosine of tracked pairs as training goes, and a 2-D map of
// the tracked words at each checkpoint; then static against contextual neighbours of a word.
import { post } from "../api.js";
import { el, fmt, svg, svgText } from "../draw.js";

const ANIMALS = ["cat", "dog", "horse", "cow", "sheep", "goat"];
const VEHICLES = ["car", "truck", "bus", "train", "plane", "boat"];

// A toy corpus where words of one topic share contexts and never meet the other topic's.
function toyCorpus(sentences = 2000) {
  let seed = 7;
  const pick = (xs) => xs[(seed = (seed * 16807) % 2147483647) % xs.length];
  const topics = [
    [ANIMALS, ["eats", "sleeps", "grazes", "runs"], ["grass", "hay", "field", "barn"]],
    [VEHICLES, ["drives", "stops", "carries", "parks"], ["road", "station", "fuel", "engine"]],
  ];
  return Array.from({ length: sentences }, () => {
    const [nouns, verbs, things] = pick(topics);
    return `${pick(["the", "a"])} ${pick(nouns)} ${pick(verbs)} near the ${pick(things)} with the ${pick(nouns)}`;
  }).join("\n");
}

const TOY = toyCorpus();
const form = {
  text: TOY, track: "cat,dog; car,truck; cat,car; horse,bus", epochs: 3, dim: 20,
  word: "bank", sentences: "I sat on the bank of the river.\nThe bank raised its interest rates.\nShe paid the cheque into her bank account.",
};
const COLOURS = ["#2f6fde", "#d9622b", "#2a9d5b", "#9b4dca", "#c0392b", "#7f8c8d"];

function curves(d) {
  const W = 460, H = 260, pad = 36;
  const x = (p) => pad + p * (W - 2 * pad);
  const y = (c) => H - pad - ((c + 1) / 2) * (H - 2 * pad);
  const lines = d.pairs.map((p, i) => svg("polyline", {
    points: p.cosines.map((c, j) => `${x(d.progress[j])},${y(c)}`).join(" "),
    fill: "none", stroke: COLOURS[i % COLOURS.length], "stroke-width": 2,
  }));
  const legend = d.pairs.map((p, i) => svgText(W - pad, pad + 14 * i, `${p.a} · ${p.b}`, { "text-anchor": "end", fill: COLOURS[i % COLOURS.length] }));
  return svg("svg", { width: W, height: H, class: "plot", id: "learn-curves" },
    svg("line", { x1: pad, x2: W - pad, y1: y(0), y2: y(0), stroke: "#bbb" }),
    svgText(pad, H - 8, "0%"), svgText(W - pad, H - 8, "100% trained", { "text-anchor": "end" }),
    svgText(4, y(1) + 4, "+1"), svgText(4, y(-1) + 4, "−1"), ...lines, ...legend);
}

function map(d, c, size = 220) {
  const pts = d.maps[c], pad = 30;
  const s = (v) => pad + ((v + 1.1) / 2.2) * (size - 2 * pad);
  return el("figure", { class: "learn-map" },
    svg("svg", { width: size, height: size, class: "plot" },
      ...pts.flatMap(([px, py], i) => [
        svg("circle", { cx: s(px), cy: size - s(py), r: 3.5, fill: "#2f6fde" }),
        svgText(s(px) + 5, size - s(py) - 4, d.labels[i], { "font-size": 11 }),
      ])),
    el("figcaption", { text: `${Math.round(100 * d.progress[c])}% trained` }));
}

function neighbours(d, c) {
  return el("table", { id: "learn-neighbours" },
    el("tr", {}, el("th", { text: "word" }), el("th", { text: `nearest words at ${Math.round(100 * d.progress[c])}%` })),
    ...d.tracked.map((t) => el("tr", {}, el("td", { text: t.word }), el("td", { text: t.neighbours[c].map(([w, s]) => `${w} ${fmt(s, 2)}`).join(", ") }))));
}

function learned(d) {
  const n = d.progress.length;
  const shown = [...new Set([0, Math.round((n - 1) / 3), Math.round((2 * (n - 1)) / 3), n - 1])];
  const slider = el("input", { type: "range", min: 0, max: n - 1, value: n - 1, id: "learn-step" });
  const detail = el("div", { class: "row" });
  const show = () => detail.replaceChildren(map(d, Number(slider.value), 300), neighbours(d, Number(slider.value)));
  slider.addEventListener("input", show);
  show();
  return el("div", { class: "card", id: "learn-result" },
    el("h2", { text: `${d.mode}: ${d.vocabulary.toLocaleString()} words × ${d.dim}, ${d.corpus_words.toLocaleString()} words × ${d.epochs} epochs in ${fmt(d.seconds, 1)} s` }),
    el("div", { class: "row" }, curves(d), ...shown.map((c) => map(d, c))),
    el("p", { class: "note", text: "Drag through the checkpoints: from random vectors (0%) to trained ones." }),
    slider, detail);
}

function contrastResult(d) {
  const column = (title, list) => el("div", { class: "card contrast-list" }, el("h3", { text: title }),
    el("ol", {}, ...list.map(([w, s]) => el("li", { text: `${w} ${fmt(s, 2)}` }))));
  return el("div", { class: "row", id: "contrast-result" },
    column(`${d.static_model}: one list, whatever the sentence`, d.static),
    ...d.sentences.map((s) => column(`${d.contextual_model}, layer ${d.layer}: “${s.sentence}”`, s.neighbours)));
}

export async function render(root, state) {
  const text = el("textarea", { id: "learn-text", rows: 6, style: "width:100%" });
  text.value = form.text;
  const track = el("input", { type: "text", id: "learn-track", value: form.track, style: "min-width:22em" });
  const epochs = el("input", { type: "number", id: "learn-epochs", value: form.epochs, min: 1, max: 50 });
  const out = el("div");
  const train = async (e) => {
    e?.preventDefault();
    Object.assign(form, { text: text.value, track: track.value, epochs: Number(epochs.value) });
    const groups = form.track.split(";").map((g) => g.split(",").map((w) => w.trim()).filter(Boolean)).filter((g) => g.length);
    out.replaceChildren(el("p", { class: "note", text: "training…" }));
    // the toy corpus has 30 words, all of them frequent: subsampling would drop most of it
    const sample = form.text === TOY ? 0 : 1e-3;
    const d = await post("/api/learn", { text: form.text, track: groups, epochs: form.epochs, dim: form.dim, sample });
    out.replaceChildren(learned(d));
  };
  const failed = (box) => (err) => box.replaceChildren(el("p", { class: "note", text: err.message }));

  const statics = state.models.filter((m) => m.kind === "static");
  const word = el("input", { type: "text", id: "contrast-word", value: form.word });
  const sentences = el("textarea", { id: "contrast-sentences", rows: 3, style: "width:100%" });
  sentences.value = form.sentences;
  const side = el("div");
  const compare = async (e) => {
    e?.preventDefault();
    Object.assign(form, { word: word.value, sentences: sentences.value });
    side.replaceChildren(el("p", { class: "note", text: "reading each sentence…" }));
    const d = await post("/api/contrast", {
      word: form.word, sentences: form.sentences.split("\n").filter((s) => s.trim()), model: state.model, static: statics[0].name,
    });
    side.replaceChildren(contrastResult(d));
  };

  root.replaceChildren(
    el("div", { class: "card" },
      el("h2", { text: "Watch embeddings being learned (word2vec, skip-gram)" }),
      el("p", { class: "note", text: "Vectors start random; each step pulls a word towards the words around it and pushes it from random noise words, so words used in the same contexts end up pointing the same way. Paste your own text (one sentence a line) or keep the toy corpus." }),
      el("form", { class: "controls", onsubmit: (e) => train(e).catch(failed(out)) },
        text, el("label", { text: "track " }, track), el("label", { text: "epochs " }, epochs), el("button", { type: "submit", text: "Train" }))),
    out,
    el("div", { class: "card" },
      el("h2", { text: "Static vs contextual" }),
      el("p", { class: "note", text: statics.length ? `${statics[0].name} gives a word one vector, so one neighbour list; ${state.model} gives it one vector per sentence.` : "serve a static table too (--models … glove-50) to compare." }),
      el("form", { class: "controls", onsubmit: (e) => compare(e).catch(failed(side)) },
        el("label", { text: "word " }, word), sentences, el("button", { type: "submit", text: "Compare", disabled: !statics.length }))),
    side);
}
