// Next token (decoders): the probability of each candidate next token under temperature,
// top-k and top-p; click one to append it, and see where each new token looked.
import { post } from "../api.js";
import { el, percent, tokenLabels, sequential, visible } from "../draw.js";

const opts = { temperature: 1, top_k: "", top_p: 1 };
// The tokens appended by clicking, while the text is still the one they made: typing a new
// text (or choosing another model) starts a new history.
const history = { text: null, model: null, tokens: [] };  // tokens: [{token, looked}]

function looked(d, labels) {
  // Where the last token attends (layers and heads averaged), the first token (a sink) left out.
  return d.attention.map((w, i) => [labels[i], w, i]).filter(([, , i]) => i > 0 && !d.tokens.special[i])
    .sort((a, b) => b[1] - a[1]).slice(0, 3);
}

export async function render(root, state) {
  if (state.info.kind !== "decoder") {
    const decoders = state.models.filter((m) => m.kind === "decoder");
    root.replaceChildren(el("div", { class: "card" },
      el("h2", { text: "Next-token prediction needs a decoder" }),
      el("p", { class: "note", text: `${state.model} is an encoder: it reads the whole text at once and has no language-model head.` }),
      ...decoders.map((m) => el("button", { onclick: () => state.setModel(m.name), text: `Switch to ${m.name}` }))));
    return;
  }
  if (history.text !== state.text || history.model !== state.model) {
    Object.assign(history, { text: state.text, model: state.model, tokens: [] });
  }
  const generated = history.tokens;
  const body = {
    model: state.model, text: state.text, k: 12, temperature: opts.temperature,
    top_k: opts.top_k === "" ? null : +opts.top_k, top_p: opts.top_p >= 1 ? null : opts.top_p,
  };
  const d = await post("/api/next", body);
  const n = d.next;
  const labels = tokenLabels(d.tokens, state.text);
  const rerender = () => { state.drawn.delete("next"); state.refresh(); };

  const tLabel = (t) => (t === 0 ? "0 (greedy)" : t.toFixed(2));
  const temp = el("input", { type: "range", id: "next-temperature", min: "0", max: "3", step: "0.05", value: opts.temperature,
    onchange: (e) => { opts.temperature = +e.target.value; rerender(); },
    oninput: (e) => { tShown.textContent = tLabel(+e.target.value); } });
  const tShown = el("output", { id: "next-temperature-value", text: tLabel(opts.temperature) });
  const topk = el("input", { type: "number", id: "top-k", min: "1", placeholder: "off", value: opts.top_k, style: "width:6em",
    onchange: (e) => { opts.top_k = e.target.value; rerender(); } });
  const topp = el("input", { type: "range", id: "top-p", min: "0.05", max: "1", step: "0.05", value: opts.top_p,
    onchange: (e) => { opts.top_p = +e.target.value; rerender(); },
    oninput: (e) => { pShown.textContent = (+e.target.value).toFixed(2); } });
  const pShown = el("output", { text: opts.top_p >= 1 ? "off" : opts.top_p.toFixed(2) });

  const top = n.candidates[0]?.p || 1;
  const cands = el("div", { class: "cands", id: "candidates" }, ...n.candidates.map((c) => el("div", {
    class: "cand", "data-id": c.id, title: "click to append",
    onclick: () => {
      generated.push({ token: c.text, looked: null });
      history.text = state.text + c.text;
      state.setText(history.text);
    },
  }, el("span", { class: "tok", text: visible(c.text) }),
     el("div", {}, el("div", { class: "bar", style: `width:${(100 * c.p / top).toFixed(1)}%` })),
     el("span", { class: "num p", text: percent(c.p) }),
     el("span", { class: "num", title: "plain softmax, T = 1", text: percent(c.p1) }))));

  const last = generated[generated.length - 1];
  if (last && last.looked === null) last.looked = looked(d, labels);
  const maxW = Math.max(...d.attention.slice(1), 1e-9);
  const heat = el("p", { class: "heat" }, ...labels.map((l, i) => el("span", {
    text: l, title: d.attention[i].toFixed(3),
    style: `background:${i === 0 ? "#f2f4f7" : sequential(d.attention[i] / maxW)}`,
  }), " "));

  root.replaceChildren(
    el("div", { class: "card" },
      el("h2", { text: "What comes next?" }),
      el("p", { class: "note", id: "next-note", text: `The model's probabilities for the token after the text${n.filtered ? `: ${n.kept} of ${n.vocab.toLocaleString("en")} tokens kept by top-k / top-p, the rest set to 0 and the kept ones renormalised` : ""}. Temperature divides the scores before the softmax: low T sharpens, high T flattens, T = 0 keeps only the most likely token (greedy). Click a token to append it.` }),
      el("div", { class: "controls" },
        el("label", {}, "temperature ", temp, " ", tShown),
        el("label", {}, "top-k ", topk),
        el("label", {}, "top-p ", topp, " ", pShown)),
      el("div", { class: "cands-head note" }, "token · probability (with these settings) · plain softmax (T = 1)"),
      cands),
    el("div", { class: "card" },
      el("h2", { text: "Where the last token looks" }),
      el("p", { class: "note", text: "Attention of the last token over the text, averaged over every layer and head (the first token, an attention sink, in grey)." }),
      heat,
      generated.length ? el("h3", { text: "Appended tokens and the words each one looked at most" }) : null,
      generated.length ? el("ol", { class: "gen", id: "generated" }, ...generated.map((g) => el("li", {},
        el("b", { text: visible(g.token) }), " → ",
        (g.looked || []).map(([l, w]) => `${l} (${w.toFixed(2)})`).join(", ")))) : null));
}
