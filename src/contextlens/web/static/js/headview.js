// The head view: tokens on the left (queries) and right (keys), a line from each query to each
// key it attends to, thickness and opacity = weight. Hover a word on the left to see only its
// lines; click it to choose it. Self-contained (no imports): the notebook display inlines it.
const NS = "http://www.w3.org/2000/svg";
const ROW = 22;

function node(tag, attrs, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  return n;
}

// data: {labels: [s], edges: [[query, key, weight], ...]}; options: {selected, onSelect}.
export function renderHeadView(container, data, options = {}) {
  const { labels, edges } = data;
  const s = labels.length;
  const width = Math.max(...labels.map((l) => l.length), 4) * 8 + 16;
  const gap = 190;
  const svg = node("svg", {
    class: "hv", width: 2 * width + gap, height: s * ROW + 10, role: "img",
    "aria-label": "attention head view",
  });
  const lines = node("g", {});
  svg.append(lines);
  const left = [], right = [];
  labels.forEach((label, i) => {
    const y = i * ROW + 18;
    const a = node("text", { x: width, y, "text-anchor": "end", "data-i": i, class: "q" }, label);
    const b = node("text", { x: width + gap, y, "data-i": i, class: "k" }, label);
    left.push(a); right.push(b);
    svg.append(a, b);
  });
  const drawn = edges.map(([q, k, w]) => {
    const line = node("line", {
      x1: width + 6, y1: q * ROW + 13, x2: width + gap - 6, y2: k * ROW + 13,
      "stroke-width": (0.5 + 7 * w).toFixed(2), "data-q": q, "data-k": k, "data-w": w,
    });
    lines.append(line);
    return { line, q, k, w };
  });
  let selected = options.selected ?? null;

  function focus(i) {
    left.forEach((t, j) => t.classList.toggle("focus", j === i));
    right.forEach((t) => t.classList.remove("focus"));
    for (const { line, q, k, w } of drawn) {
      const on = i === null || q === i;
      line.style.display = on ? "" : "none";
      line.classList.toggle("on", i !== null && on);
      line.style.opacity = (i === null ? 0.65 * w : 0.2 + 0.8 * w).toFixed(3);
      if (i !== null && on && w > 0.1) right[k].classList.add("focus");
    }
  }
  left.forEach((t, i) => {
    t.addEventListener("mouseenter", () => focus(i));
    t.addEventListener("click", () => {
      selected = i;
      if (options.onSelect) options.onSelect(i);
    });
  });
  svg.addEventListener("mouseleave", () => focus(selected));
  focus(selected);
  container.replaceChildren(svg);
  return { focus };
}
