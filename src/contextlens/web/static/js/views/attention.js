// Attention: the head view of one layer and head (or the heads' average), one query token step
// by step beside it — scores Q·Kᵀ/√d, softmax with a temperature, the weighted sum of the
// values V — for the same head selection, and a layer × head grid of small heatmaps to pick
// from. Long texts and deep models scroll inside their boxes, so the page keeps its size.
import { post } from "../api.js";
import { el, fmt, heatmap, strip, tokenLabels } from "../draw.js";
import { renderHeadView } from "../headview.js";

const pick = { layer: null, head: null, query: null, text: null, model: null };
const GRID_OPEN = 72;  // the grid starts open up to this many heads (minilm: 6 × 12)

function defaultQuery(labels, special) {
  const it = labels.findIndex((l) => l.toLowerCase() === "it");
  if (it >= 0) return it;
  const words = labels.map((_, i) => i).filter((i) => !special[i]);
  return words[words.length - 1] ?? 0;
}

// The head selection in words, shared by the head view's and the step card's titles.
function selection(nHeads) {
  return pick.head === null ? `all ${nHeads} heads averaged` : `head ${pick.head + 1}`;
}

export async function render(root, state) {
  if (pick.text !== state.text || pick.model !== state.model) {
    Object.assign(pick, { layer: Math.floor(state.info.n_layers / 2), head: null, query: null, text: state.text, model: state.model });
  }
  const d = await post("/api/attention", { model: state.model, text: state.text, layer: pick.layer, head: pick.head });
  const labels = tokenLabels(d.tokens, state.text);
  if (pick.query === null) pick.query = defaultQuery(labels, d.tokens.special);
  const redraw = () => { state.drawn.delete("attention"); state.refresh(); };

  const layerSel = el("select", { id: "layer", onchange: (e) => { pick.layer = +e.target.value; redraw(); } },
    ...Array.from({ length: d.n_layers }, (_, l) => new Option(`layer ${l + 1}`, l)));
  layerSel.value = pick.layer;
  const headSel = el("select", { id: "head", onchange: (e) => { pick.head = e.target.value === "" ? null : +e.target.value; redraw(); } },
    new Option("all heads (average)", ""), ...Array.from({ length: d.n_heads }, (_, h) => new Option(`head ${h + 1}`, h)));
  headSel.value = pick.head ?? "";

  const view = el("div", { id: "headview" });
  const steps = el("div", { class: "panel", id: "steps" });
  renderHeadView(view, { labels, edges: d.edges }, {
    selected: pick.query,
    onSelect: (i) => { pick.query = i; drawSteps(steps, state, labels, d.n_heads); },
  });

  const grid = el("div", { class: "grid", id: "grid", style: `grid-template-columns: auto repeat(${d.n_heads}, 38px)` },
    el("span", {}), ...Array.from({ length: d.n_heads }, (_, h) => el("span", { text: `h${h + 1}`, style: "text-align:center" })));
  d.grid.forEach((heads, l) => {
    grid.append(el("span", { class: "lab", text: `L${l + 1}` }));
    heads.forEach((m, h) => grid.append(heatmap(m, {
      class: l === pick.layer && (pick.head === null || h === pick.head) ? "sel" : "",
      title: `layer ${l + 1}, head ${h + 1}: entropy ${fmt(d.stats.entropy[l][h], 2)} nats, mean distance ${fmt(d.stats.distance[l][h], 1)} tokens, on first/special tokens ${Math.round(100 * d.stats.sink[l][h])}%`,
      "data-layer": l, "data-head": h,
      onclick: () => { pick.layer = l; pick.head = h; redraw(); },
    })));
  });

  const long = d.tokens.tokens.length > 64 ? ` Long text: the ${d.top_k} strongest lines per word are drawn; scroll the box to see every word.` : "";
  root.replaceChildren(
    el("div", { class: "card" },
      el("h2", { id: "attention-title", text: `Who attends to whom — layer ${pick.layer + 1}, ${selection(d.n_heads)}` }),
      el("p", { class: "note", text: `Each word on the left (a query) sends lines to the words on the right it takes information from; thicker = more weight. Hover a word on the left to see only its lines, click it to follow it step by step beside them.${long}` }),
      el("div", { class: "controls" }, layerSel, headSel),
      el("div", { class: "split" },
        el("div", { class: "scrollbox", id: "headview-box" }, view),
        steps)),
    el("details", { class: "card", id: "grid-box", open: d.n_layers * d.n_heads <= GRID_OPEN },
      el("summary", { text: `Every layer × head — ${d.n_layers} × ${d.n_heads} (click one to pick it)` }),
      el("p", { class: "note", text: "Rows: layers; columns: heads. Each square is that head's attention matrix (queries down, keys across)." }),
      el("div", { class: "scrollbox" }, grid)));
  await drawSteps(steps, state, labels, d.n_heads);
}

// softmax(scores / t) over the keys a query may see (`keys`), as {key: p}.
function softmax(scores, keys, t) {
  const top = Math.max(...keys.map((k) => scores[k] / t));
  const e = keys.map((k) => Math.exp(scores[k] / t - top));
  const total = e.reduce((a, b) => a + b, 0);
  return Object.fromEntries(keys.map((k, i) => [k, e[i] / total]));
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function drawSteps(root, state, labels, nHeads) {
  const d = await post("/api/steps", { model: state.model, text: state.text, layer: pick.layer, head: pick.head, query: pick.query });
  const one = d.head !== null;
  const slider = el("input", { type: "range", id: "temperature", min: "0.1", max: "5", step: "0.1", value: "1" });
  const shown = el("output", { id: "temperature-value", text: "1.0" });
  const body = el("tbody");
  const out = el("div");
  const keys = d.scores[0].map((_, k) => k).filter((k) => d.scores[0][k] !== null);
  const model = Object.fromEntries(keys.map((k) => [k, mean(d.weights.map((w) => w[k]))]));
  const order = keys.length > 24 ? [...keys].sort((a, b) => model[b] - model[a]).slice(0, 24).sort((a, b) => a - b) : keys;
  const scale = d.values.flat(2).reduce((m, x) => Math.max(m, Math.abs(x)), 1e-9) / 2;

  function update() {
    const t = +slider.value;
    shown.textContent = t.toFixed(1);
    const perHead = d.scores.map((s) => softmax(s, keys, t));  // [h] of {key: p}
    const p = Object.fromEntries(keys.map((k) => [k, mean(perHead.map((ph) => ph[k]))]));
    body.replaceChildren(...order.map((k) => el("tr", { "data-k": k },
      el("td", { class: "tok", text: labels[k] }),
      one ? el("td", { class: "num", text: fmt(d.scores[0][k], 2) }) : null,
      el("td", { class: "num p", text: fmt(p[k], 4) }),
      el("td", { style: "width: 200px" }, el("div", { class: "bar", style: `width:${(100 * p[k]).toFixed(1)}%` })),
      el("td", { class: "num model", text: fmt(model[k], 4) }))));
    const outputs = d.values.map((v, h) => v[0].map((_, j) => keys.reduce((acc, k) => acc + perHead[h][k] * v[k][j], 0)));
    out.replaceChildren(
      el("h3", { text: one
        ? `Output of this head for “${labels[d.query]}”: Σ softmax × V  (${d.head_dim} numbers)`
        : `Each head's output for “${labels[d.query]}”: Σ softmax × V (${d.head_dim} numbers each), one strip per head; concatenated, they go through the output projection` }),
      ...outputs.map((o, h) => strip(o, scale, one ? "weighted sum of values" : `head ${h + 1}`)));
  }
  slider.addEventListener("input", update);
  const columns = one ? ["key", "q·k/√d", "softmax(·/T)", "", "model (T=1)"] : ["key", "softmax(·/T), heads averaged", "", "model (T=1), heads averaged"];
  root.replaceChildren(...[
    el("h2", { id: "steps-title", text: `Step by step: “${labels[d.query]}” in layer ${d.layer + 1}, ${selection(nHeads)}` }),
    el("p", { class: "note", text: `1. score = q·k / √${d.head_dim} for every key${keys.length < d.scores[0].length ? " it may see (a decoder's causal mask hides the words after it)" : ""}; 2. softmax(score / T) turns scores into weights that sum to 1 — T = 1 is what the model does, lower T sharpens, higher T flattens; 3. the output is the weighted sum of the value vectors.${one ? "" : " With the heads averaged, each head does this on its own and the table shows the mean of their weights (pick a head above to see its scores)."}` }),
    el("div", { class: "controls" }, el("label", {}, "temperature T ", slider, " ", shown)),
    el("table", { id: "steps-table" },
      el("thead", {}, el("tr", {}, ...columns.map((h) => el("th", { text: h })))),
      body),
    keys.length > order.length ? el("p", { class: "note", text: `The ${order.length} keys with the largest weights of ${keys.length}.` }) : null,
    out].filter(Boolean));
  update();
}
