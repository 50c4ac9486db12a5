// KV cache: bytes per token and per context length for MHA, GQA, MQA and MLA (the model shown and
// named real configurations), with the formulas; and, for the text, what a latent-attention layer
// caches next to what this grouped-query model caches, and its naive and absorbed attention.
import { get } from "../api.js";
import { el, fmt, visible } from "../draw.js";

function size(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return i === 0 ? `${n.toLocaleString()} B` : `${n.toFixed(1)} ${units[i]}`;
}

function context(n) {
  return n % 1024 === 0 ? `${n / 1024}k` : String(n);
}

function sizes(r) {
  const s = r.shape;
  const widths = s.kv_rank === null
    ? `d_h=${s.key_dim}`
    : `d_qk=${s.key_dim}, d_v=${s.value_dim} (d_h=${(s.key_dim + s.value_dim) / 2}), d_c=${s.kv_rank}, d_r=${s.rope_dim}`;
  const head = el("tr", {}, ...["variant", "formula", "B/token", ...r.contexts.map(context), `× ${r.native}`]
    .map((t) => el("th", { text: t })));
  const rows = r.variants.map((v) => el("tr", { class: v.name === r.native ? "on" : "" },
    el("td", { text: v.name + (v.name === r.native ? " ◀" : "") }),
    el("td", { text: `${v.formula} = ${v.numbers}` }),
    el("td", { class: "num", text: v.bytes_per_token.toLocaleString() }),
    ...r.contexts.map((n) => el("td", { class: "num", text: size(v.bytes_at[n]) })),
    el("td", { class: "num", text: fmt(v.times_native, 3) })));
  return el("div", { class: "card kv-config" },
    el("h3", { text: `${s.name}: uses ${r.native}` }),
    el("p", { class: "note", text: `L=${s.layers} layers, H=${s.heads} heads, H_kv=${s.kv_heads}, ${widths}, b=${s.bytes_per_value} (${s.dtype})` }),
    el("table", { class: "kv-table" }, el("thead", {}, head), el("tbody", {}, ...rows)));
}

function demo(d) {
  const shown = (i) => visible(d.tokens[i]);
  const top = d.absorbed.map((w, i) => [i, w]).sort((a, b) => b[1] - a[1]).slice(0, 6);
  const w = d.mla_widths;
  return el("div", { class: "card kv-demo" },
    el("h3", { text: "What is cached for this text" }),
    el("p", { text: `${d.model} (grouped-query attention) caches a key and a value per KV head: [L, 2, H_kv, tokens, d_h] = [${d.gqa_cache.join(", ")}] → ${d.gqa_bytes.toLocaleString()} B.` }),
    el("p", { text: `A latent-attention layer of the same width (${w.heads} heads, d_c=${w.d_c}, d_r=${w.d_r}; random weights, seeded, fed layer ${d.layer}'s hidden states) caches only c_KV and the RoPE key: [L, tokens, d_c + d_r] = [${d.mla_cache.join(", ")}] → ${d.mla_bytes.toLocaleString()} B.` }),
    el("p", { text: "Naive (keys and values decompressed) and absorbed (W_UK folded into the query, scored against c_KV) give the same attention; the last token's, head 0:" }),
    el("table", { class: "kv-table" },
      el("thead", {}, el("tr", {}, ...["token", "naive", "absorbed"].map((t) => el("th", { text: t })))),
      el("tbody", {}, ...top.map(([i]) => el("tr", {},
        el("td", { text: shown(i) }),
        el("td", { class: "num", text: fmt(d.naive[i], 4) }),
        el("td", { class: "num", text: fmt(d.absorbed[i], 4) }))))),
    el("p", { class: "note", text: `Largest difference over all heads and tokens: ${d.max_difference.toExponential(1)}.` }));
}

export async function render(root, state) {
  if (state.info.kind !== "decoder" && state.info.kind !== "encoder") {
    root.replaceChildren(el("div", { class: "card" },
      el("h2", { text: "The KV cache belongs to transformers" }),
      el("p", { class: "note", text: `${state.model} is a word-vector table: choose a transformer model.` })));
    return;
  }
  const query = new URLSearchParams({ model: state.model });
  if (state.info.kind === "decoder") query.set("text", state.text);
  const d = await get(`/api/kv-cache?${query}`);
  root.replaceChildren(
    el("p", { class: "note", text: "Per token, every layer caches: MHA 2·L·H·d_h·b, GQA 2·L·H_kv·d_h·b, MQA 2·L·d_h·b, MLA L·(d_c+d_r)·b (b: bytes per number)." }),
    ...(d.demo ? [demo(d.demo)] : []),
    ...d.reports.map(sizes));
}
