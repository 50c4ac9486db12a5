// Tokens → vectors: the tokens with their ids, each token's row of the embedding matrix, the
// position vector added to it (learned or sinusoidal tables; RoPE adds none) and the sum that
// enters layer 1 (after the embedding LayerNorm where the model has one).
import { post } from "../api.js";
import { el, strip, tokenLabels } from "../draw.js";

// The 98th percentile of |x|: a colour scale that outliers do not wash out.
function scaleOf(rows) {
  const all = rows.flat().map(Math.abs).sort((a, b) => a - b);
  return all[Math.floor(0.98 * (all.length - 1))] || 1;
}

export async function render(root, state) {
  const { tokens: t, vectors: v } = await post("/api/tokens", { model: state.model, text: state.text });
  const labels = tokenLabels(t, state.text);
  const chips = el("div", { class: "chips", id: "token-chips" }, ...labels.map((label, i) =>
    el("span", { class: t.special[i] ? "chip special" : "chip", "data-i": i, title: `token ${i}: ${t.tokens[i]}` },
      label, el("small", { text: t.ids[i] }))));
  const scales = { token: scaleOf(v.token), position: v.position ? scaleOf(v.position) : 1, input: scaleOf(v.input) };
  const rope = v.position_kind === "rope";
  const rows = v.token.map((row, i) => el("tr", {},
    el("td", { class: "num", text: i }),
    el("td", { class: "tok", text: labels[i] }),
    el("td", { class: "num", text: t.ids[i] }),
    el("td", {}, strip(row, scales.token, `embedding row ${t.ids[i]}`)),
    el("td", { class: "op", text: "+" }),
    el("td", {}, rope ? el("span", { class: "note", text: "— (RoPE)" }) : strip(v.position[i], scales.position, `position ${i}`)),
    el("td", { class: "op", text: "=" }),
    el("td", {}, strip(v.input[i], scales.input, `input to layer 1, token ${i}`))));
  const how = rope
    ? "This model uses RoPE: no position vector is added here; queries and keys are rotated by an angle that grows with the position inside every attention layer."
    : `A learned position vector is added to each token's row${v.norm ? ", then the sum is normalised (LayerNorm) before layer 1" : ""}.`;
  root.replaceChildren(
    el("div", { class: "card" },
      el("h2", { text: `${t.tokens.length} tokens` }),
      el("p", { class: "note", text: "The tokenizer cuts the text into pieces from its vocabulary; each piece has an id, its row number in the embedding matrix." }),
      chips),
    el("div", { class: "card" },
      el("h2", { text: `Each token becomes a vector of ${v.d_model} numbers` }),
      el("p", { class: "note", text: `Each strip is one vector, one cell per dimension (orange positive, blue negative). ${how}` }),
      v.shown < t.tokens.length ? el("p", { class: "note", text: `Showing the first ${v.shown} tokens.` }) : null,
      el("table", { id: "vectors" },
        el("thead", {}, el("tr", {}, ...["#", "token", "id", "embedding row", "", "position", "", "enters layer 1"].map((h) => el("th", { text: h })))),
        el("tbody", {}, ...rows))));
}
