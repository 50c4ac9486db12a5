// Attention: the head view of one layer and head (or the heads' average), a layer × head grid
// of small heatmaps to pick from, and one query token step by step: scores Q·Kᵀ/√d, softmax
// with a temperature, and the weighted sum of the values V.
import { post } from "../api.js";
import { el, fmt, heatmap, strip, tokenLabels } from "../draw.js";
import { renderHeadView } from "../headview.js";

const pick = { layer: null, head: null, query: null, text: null, model: null };

function defaultQuery(labels, special) {
  const it = labels.findIndex((l) => l.toLowerCase() === "it");
  if (it >= 0) return it;
  const words = labels.map((_, i) => i).filter((i) => !special[i]);
  return words[words.length - 1] ?? 0;
}

export async function render(root, state) {
  if (pick.text !== state.text || pick.model !== state.model) {
    Object.assign(pick, { layer: Math.floor(state.info.n_layers / 2), head: null, query: null, text: state.text, model: state.model });
  }
  const d = await post("/api/attention", { model: state.model, text: state.text, layer: pick.layer, head: pick.head });
  const labels = tokenLabels(d, state.text);
  if (pick.query === null) pick.query = defaultQuery(labels, d.special);
  const redraw = () => { state.drawn.delete("attention"); state.refresh(); };

  const layerSel = el("select", { id: "layer", onchange: (e) => { pick.layer = +e.target.value; redraw(); } },
    ...Array.from({ length: d.n_layers }, (_, l) => new Option(`layer ${l + 1}`, l)));
  layerSel.value = pick.layer;
  const headSel = el("select", { id: "head", onchange: (e) => { pick.head = e.target.value === "" ? null : +e.target.value; redraw(); } },
    new Option("all heads (average)", ""), ...Array.from({ length: d.n_heads }, (_, h) => new Option(`head ${h + 1}`, h)));
  headSel.value = pick.head ?? "";

  const view = el("div", { id: "headview" });
  const steps = el("div", { class: "card", id: "steps" });
  renderHeadView(view, { labels, edges: d.edges }, {
    selected: pick.query,
    onSelect: (i) => { pick.query = i; drawSteps(steps, state, labels); },
  });

  const grid = el("div", { class: "grid", id: "grid", style: `grid-template-columns: auto repeat(${d.n_heads}, 38px)` },
    el("span", {}), ...Array.from({ length: d.n_heads }, (_, h) => el("span", { text: `h${h + 1}`, style: "text-align:center" })));
  d.grid.forEach((heads, l) => {
    grid.append(el("span", { class: "lab", text: `L${l + 1}` }));
    heads.forEach((m, h) => grid.append(heatmap(m, {
      class: l === pick.layer && h === pick.head ? "sel" : "",
      title: `layer ${l + 1}, head ${h + 1}: entropy ${fmt(d.entropy[l][h], 2)} nats, mean distance ${fmt(d.distance[l][h], 1)} tokens, on first/special tokens ${Math.round(100 * d.sink[l][h])}%`,
      "data-layer": l, "data-head": h,
      onclick: () => { pick.layer = l; pick.head = h; redraw(); },
    })));
  });

  const what = pick.head === null ? `layer ${pick.layer + 1}, all ${d.n_heads} heads averaged` : `layer ${pick.layer + 1}, head ${pick.head + 1}`;
  root.replaceChildren(
    el("div", { class: "card" },
      el("h2", { text: `Who attends to whom — ${what}` }),
      el("p", { class: "note", text: `Each word on the left (a query) sends lines to the words on the right it takes information from; thicker = more weight. Hover a word on the left to see only its lines, click it to follow it step by step below.${d.tokens.length > 64 ? ` Long text: the ${d.top_k} strongest lines per word are drawn.` : ""}` }),
      el("div", { class: "controls" }, layerSel, headSel),
      el("div", { class: "row" }, view,
        el("div", {},
          el("h3", { text: "Every layer × head (click one)" }),
          el("p", { class: "note", text: "Rows: layers; columns: heads. Each square is that head's attention matrix (queries down, keys across)." }),
          grid))),
    steps);
  await drawSteps(steps, state, labels);
}

async function drawSteps(root, state, labels) {
  const head = pick.head ?? 0;
  const d = await post("/api/steps", { model: state.model, text: state.text, layer: pick.layer, head, query: pick.query });
  const slider = el("input", { type: "range", id: "temperature", min: "0.1", max: "5", step: "0.1", value: "1" });
  const shown = el("output", { id: "temperature-value", text: "1.0" });
  const body = el("tbody");
  const out = el("div");
  const keys = d.scores.map((s, k) => k).filter((k) => d.scores[k] !== null);
  const order = keys.length > 24 ? [...keys].sort((a, b) => d.weights[b] - d.weights[a]).slice(0, 24).sort((a, b) => a - b) : keys;

  function update() {
    const t = +slider.value;
    shown.textContent = t.toFixed(1);
    const top = Math.max(...keys.map((k) => d.scores[k] / t));
    const e = keys.map((k) => Math.exp(d.scores[k] / t - top));
    const total = e.reduce((a, b) => a + b, 0);
    const p = Object.fromEntries(keys.map((k, i) => [k, e[i] / total]));
    body.replaceChildren(...order.map((k) => el("tr", { "data-k": k },
      el("td", { class: "tok", text: labels[k] }),
      el("td", { class: "num", text: fmt(d.scores[k], 2) }),
      el("td", { class: "num p", text: fmt(p[k], 4) }),
      el("td", { style: "width: 220px" }, el("div", { class: "bar", style: `width:${(100 * p[k]).toFixed(1)}%` })),
      el("td", { class: "num", text: fmt(d.weights[k], 4) }))));
    const mixed = d.values[0].map((_, j) => keys.reduce((acc, k) => acc + p[k] * d.values[k][j], 0));
    const scale = Math.max(...d.values.flat().map(Math.abs), 1e-9) / 2;
    out.replaceChildren(
      el("h3", { text: `Output of this head for “${labels[d.query]}”: Σ softmax × V  (${d.head_dim} numbers)` }),
      strip(mixed, scale, "weighted sum of values"));
  }
  slider.addEventListener("input", update);
  root.replaceChildren(...[
    el("h2", { text: `Step by step: “${labels[d.query]}” in layer ${d.layer + 1}, head ${d.head + 1}` }),
    el("p", { class: "note", text: `1. score = q·k / √${d.head_dim} for every key${keys.length < d.scores.length ? " it may see (a decoder's causal mask hides the words after it)" : ""}; 2. softmax(score / T) turns scores into weights that sum to 1 — T = 1 is what the model does, lower T sharpens, higher T flattens; 3. the output is the weighted sum of the value vectors.` }),
    el("div", { class: "controls" }, el("label", {}, "temperature T ", slider, " ", shown)),
    el("table", { id: "steps-table" },
      el("thead", {}, el("tr", {}, ...["key", "q·k/√d", "softmax(·/T)", "", "model (T=1)"].map((h) => el("th", { text: h })))),
      body),
    keys.length > order.length ? el("p", { class: "note", text: `The ${order.length} keys with the largest weights of ${keys.length}.` }) : null,
    out].filter(Boolean));
  update();
}
