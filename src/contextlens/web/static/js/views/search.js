// Search (when the server serves an index): a query box, and each hit with the tokens that
// made it match — the query's and the chunk's per-token shares of their cosine.
import { post } from "../api.js";
import { diverging, el } from "../draw.js";

const form = { query: "", mode: "hybrid" };

function shares(parts, id) {
  const top = Math.max(...parts.map(([, c]) => Math.abs(c)), 1e-9);
  return el("p", { class: "heat", id }, ...parts.flatMap(([tok, c]) => [el("span", {
    text: tok, title: `${c >= 0 ? "+" : ""}${c.toFixed(4)}`, style: `background:${diverging(c / top)}`,
  }), " "]));
}

export async function render(root, state) {
  const query = el("input", { type: "text", id: "search-query", value: form.query, placeholder: "what are you looking for?", style: "flex:1; min-width: 24em" });
  const mode = el("select", { id: "search-mode" }, ...["hybrid", "dense", "bm25"].map((m) => new Option(m, m)));
  mode.value = form.mode;
  const out = el("div", { id: "search-hits" });
  const run = async (e) => {
    e?.preventDefault();
    Object.assign(form, { query: query.value, mode: mode.value });
    if (!form.query.trim()) return;
    const d = await post("/api/search", { query: form.query, mode: form.mode, k: 5 });
    out.replaceChildren(...(d.hits.length ? d.hits.map((h) => el("div", { class: "card hit" },
      el("h2", { title: h.document, text: `${h.rank}. ${h.document.split("/").pop()} (chunk ${h.position}) · ${d.mode} score ${h.score.toFixed(4)}` }),
      el("p", { class: "note", text: `cosine ${h.explain.score.toFixed(4)} = the sum of the token shares below (orange adds, blue takes away)` }),
      el("h3", { text: "query" }), shares(h.explain.query),
      el("h3", { text: "chunk" }), shares(h.explain.chunk))) : [el("p", { class: "note", text: "no matches" })]));
  };
  const f = el("form", { class: "controls", onsubmit: (e) => run(e).catch((err) => out.replaceChildren(el("p", { class: "note", text: err.message }))) },
    query, mode, el("button", { type: "submit", text: "Search" }));
  root.replaceChildren(
    el("div", { class: "card" },
      el("h2", { text: `Search ${state.index.name}: ${state.index.documents} documents, ${state.index.chunks} chunks (${state.index.model})` }),
      el("p", { class: "note", text: "Dense search compares mean-pooled embeddings by cosine; bm25 matches words; hybrid fuses both rankings. Each hit shows how much every token added to the cosine." }),
      f),
    out);
  if (form.query) await run();
}
