// Why: what moves the output. The logit lens (the next token read from every layer), token
// attributions as coloured text (the next token, the cosine with another text, the served
// index's best hit) and the activation-patching map for two texts that differ in one word.
import { post } from "../api.js";
import { diverging, el, fmt, sequential } from "../draw.js";

const form = { other: "The animal was too tired to walk.", corrupted: null, site: "resid", text: null };
const SWAPS = [["tired", "wide"], ["wide", "tired"], ["France", "Italy"], ["Italy", "France"], ["he", "she"], ["she", "he"]];

// A corrupted text for a clean one: its first swappable word changed (else the text itself).
function corrupt(text) {
  for (const [a, b] of SWAPS) {
    const re = new RegExp(`\\b${a}\\b`);
    if (re.test(text)) return text.replace(re, b);
  }
  return text;
}

const show = (token) => token.replace(/ /g, "·").replace(/\n/g, "⏎");

function lensCard(d) {
  const rows = [...d.layers].reverse().map((row) => el("tr", {},
    el("td", { class: "num", text: row.layer === 0 ? "emb" : String(row.layer) }),
    ...row.top.map((c) => el("td", {
      class: "tok", title: fmt(c.probability),
      style: `background:${sequential(c.probability)}${c.token === d.target ? ";outline:2px solid #d9622b" : ""}`,
      text: show(c.token),
    })),
    el("td", { class: "num", text: fmt(row.target_probability) }),
    el("td", { class: "num", text: String(row.target_rank) })));
  const when = d.appears === null ? `never enters the top ${d.k}` : `enters the top ${d.k} at layer ${d.appears}` +
    (d.takes_over === null ? "" : ` and leads from layer ${d.takes_over} on`);
  return el("div", { class: "card", id: "why-lens" },
    el("h2", { text: "Logit lens: the next token, read from every layer" }),
    el("p", { class: "note", text: `Each layer's residual stream goes through the final norm and the LM head, as if the model stopped there (layer 0 = the input embedding, the last layer = the model's own prediction). ${JSON.stringify(d.target)} ${when}.` }),
    el("table", {},
      el("tr", {}, el("th", { text: "layer" }), ...d.layers[0].top.map((_, i) => el("th", { text: `#${i + 1}` })),
        el("th", { text: `p(${JSON.stringify(d.target)})` }), el("th", { text: "rank" })),
      ...rows));
}

// Tokens coloured by their integrated gradients: orange pushes the output up, blue down.
function colouredTokens(r, id) {
  const top = Math.max(...r.tokens.map((t) => Math.abs(t.integrated_gradients)), 1e-9);
  return el("div", { id },
    el("p", { class: "heat" }, ...r.tokens.map((t) => el("span", {
      text: show(t.token), style: `background:${diverging(t.integrated_gradients / top)}`,
      title: `integrated gradients ${fmt(t.integrated_gradients, 4)} · input×gradient ${fmt(t.input_x_gradient, 4)} · saliency ${fmt(t.saliency, 4)}`,
    }), " ")),
    el("p", { class: "note", text: `${r.output}: ${fmt(r.value, 4)}. Integrated gradients, ${r.steps} steps from a baseline of ${r.baseline} (there ${fmt(r.baseline_value, 4)}); they sum to the difference within ${fmt(Math.abs(r.completeness_gap), 4)}. Hover a token for all three scores.` }));
}

async function attributionCard(state) {
  const card = el("div", { class: "card", id: "why-attribution" }, el("h2", { text: "Which tokens moved it" }));
  if (state.info.kind === "decoder") {
    const r = await post("/api/attribute", { model: state.model, text: state.text });
    card.append(el("p", { class: "note", text: "The logit of the predicted next token, attributed to each input token." }), colouredTokens(r, "why-next"));
  } else {
    const other = el("input", { type: "text", id: "why-other", value: form.other, style: "width:30em",
      onchange: (e) => { form.other = e.target.value; state.drawn.delete("why"); state.refresh(); } });
    const s = await post("/api/attribute", { model: state.model, text: state.text, other: form.other });
    card.append(el("div", { class: "controls" }, el("label", {}, "compare with ", other)),
      el("p", { class: "note", text: `Cosine ${fmt(s.cosine, 4)}: which words made the two texts similar (each side with the other held fixed).` }),
      colouredTokens(s.a, "why-sim-a"), colouredTokens(s.b, "why-sim-b"));
  }
  if (state.index && state.index.model === state.model) {
    const found = await post("/api/search", { query: state.text, k: 1, mode: "dense" });
    if (found.hits.length) {
      const hit = found.hits[0];
      const s = await post("/api/attribute", { model: state.model, text: state.text, other: hit.text.slice(0, 400), score: "search score" });
      card.append(el("h3", { text: `Best hit in the index: ${hit.document}` }), colouredTokens(s.b, "why-hit"));
    }
  }
  return card;
}

function patchMap(d) {
  const cols = d.site === "heads" ? d.restored[0].map((_, h) => `H${h}`) : d.tokens.map(show);
  const rows = [...d.restored.keys()].reverse().map((i) => el("tr", {},
    el("td", { class: "num", text: String(i) }),
    ...d.restored[i].map((v, j) => el("td", { class: "cell", title: `layer ${i}, ${cols[j]}: ${fmt(v)} restored`,
      style: `background:${diverging(v)};min-width:2.2em;height:1.1em` }))));
  return el("table", { id: "why-patch-map" },
    el("tr", {}, el("th", { text: "layer" }), ...cols.map((c, j) => el("th", {
      text: c, style: d.differs.includes(j) && d.site !== "heads" ? "color:#d9622b" : "" }))),
    ...rows);
}

async function patchCard(state) {
  if (form.text !== state.text) Object.assign(form, { text: state.text, corrupted: corrupt(state.text) });
  const rerender = () => { state.drawn.delete("why"); state.refresh(); };
  const input = el("input", { type: "text", id: "why-corrupted", value: form.corrupted, style: "width:34em",
    onchange: (e) => { form.corrupted = e.target.value; rerender(); } });
  const site = el("select", { id: "why-site", onchange: (e) => { form.site = e.target.value; rerender(); } },
    ...["resid", "attn", "mlp", "heads"].map((s) => el("option", { value: s, text: s, selected: s === form.site })));
  const card = el("div", { class: "card", id: "why-patching" },
    el("h2", { text: "Patching: copy one activation of the clean run into the corrupted one" }),
    el("div", { class: "controls" }, el("label", {}, "corrupted text ", input), el("label", {}, "site ", site)));
  if (form.corrupted === state.text) {
    card.append(el("p", { class: "note", text: "Change a word of the text above (keeping the token count) to see which layer and position carry it." }));
    return card;
  }
  const d = await post("/api/patch", { model: state.model, clean: state.text, corrupted: form.corrupted, site: form.site });
  card.append(el("p", { class: "note", text: `${d.metric}: clean ${fmt(d.clean_value)}, corrupted ${fmt(d.corrupted_value)}. Each cell: the share of that difference restored by patching ${d.site === "heads" ? "one head (every position)" : "that layer × position"}; orange = restores, blue = the opposite.` }),
    patchMap(d));
  return card;
}

export async function render(root, state) {
  const cards = [];
  if (state.info.kind === "decoder") cards.push(lensCard(await post("/api/lens", { model: state.model, text: state.text, k: 6 })));
  else cards.push(el("div", { class: "card" }, el("h2", { text: "Logit lens" }),
    el("p", { class: "note", text: `${state.model} is an encoder whose checkpoint has no masked-LM head, so there is no head to read its layers through; choose a decoder for the lens.` })));
  cards.push(await attributionCard(state), await patchCard(state));
  root.replaceChildren(...cards);
}
