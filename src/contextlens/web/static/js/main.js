// The page: one text, one model, one view at a time. Each view module exports
// `render(root, state)`; a view is redrawn when it is shown after the text or model changed.
// The address can name them: /?view=next&model=smollm2&text=The%20capital%20of%20France%20is
import { get } from "./api.js";
import * as attention from "./views/attention.js";
import * as context from "./views/context.js";
import * as learning from "./views/learning.js";
import * as kvcache from "./views/kvcache.js";
import * as next from "./views/next.js";
import * as search from "./views/search.js";
import * as tokens from "./views/tokens.js";
import * as wordspace from "./views/wordspace.js";
import * as why from "./views/why.js";

const VIEWS = { tokens, attention, context, next, why, wordspace, learning, search, kvcache };
const $ = (id) => document.getElementById(id);

const state = {
  models: [],        // [{name, kind}] served by this server
  index: null,       // the search index served, if any: {name, model, documents, chunks}
  projections: [],   // 2-D projections the server offers: pca, umap, tsne
  model: null,       // the chosen transformer model
  info: null,        // its shape: n_layers, n_heads, kind, …
  text: $("text").value,
  view: "tokens",
  drawn: new Set(),  // views up to date with model + text
  refresh: () => redraw(),
  setText: (text) => { $("text").value = text; state.text = text; changed(); },
  setModel: (name) => { $("model").value = name; pickModel(name); },
};

export function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

async function pickModel(name) {
  state.model = name;
  state.info = await get(`/api/models/${encodeURIComponent(name)}`);
  changed();
}

function changed() {
  state.drawn.clear();
  redraw();
}

// A view renders into a detached element that replaces the shown one only if no newer render
// of that view started meanwhile: quick changes (a slider, a new text) never end on old data.
const tickets = {};

async function redraw() {
  const name = state.view;
  const root = $(`view-${name}`);
  document.querySelectorAll(".view").forEach((v) => v.classList.toggle("on", v === root));
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("on", b.dataset.view === name));
  if (state.drawn.has(name) || !state.model) return;
  state.drawn.add(name);
  showError("");
  root.setAttribute("aria-busy", "true");
  const ticket = (tickets[name] = (tickets[name] || 0) + 1);
  const fresh = document.createElement("div");
  try {
    await VIEWS[name].render(fresh, state);
    if (tickets[name] === ticket) root.replaceChildren(...fresh.childNodes);
  } catch (e) {
    if (tickets[name] !== ticket) return;
    state.drawn.delete(name);
    root.replaceChildren();  // nothing left from the previous text or model
    showError(e.message);
  } finally {
    if (tickets[name] === ticket) root.setAttribute("aria-busy", "false");
  }
}

async function start() {
  const params = new URLSearchParams(location.search);
  if (params.get("text")) $("text").value = params.get("text");
  state.text = $("text").value;
  state.view = VIEWS[params.get("view")] ? params.get("view") : "tokens";
  const served = await get("/api/models");
  state.models = served.models;
  state.index = served.index;
  state.projections = served.projections;
  document.querySelector('#tabs button[data-view="search"]').hidden = !state.index;
  const transformers = state.models.filter((m) => m.kind !== "static");
  $("model").replaceChildren(...transformers.map((m) => new Option(`${m.name} (${m.kind})`, m.name)));
  const wanted = transformers.find((m) => m.name === params.get("model")) || transformers[0];
  $("model").value = wanted.name;
  $("model").addEventListener("change", () => pickModel($("model").value).catch((e) => showError(e.message)));
  $("input").addEventListener("submit", (e) => {
    e.preventDefault();
    state.text = $("text").value;
    changed();
  });
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => {
    state.view = b.dataset.view;
    redraw();
  }));
  await pickModel(wanted.name);
}

start().catch((e) => showError(e.message));
