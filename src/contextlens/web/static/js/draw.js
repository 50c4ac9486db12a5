// Small drawing helpers shared by the views: elements, colour scales, labels, strips.
const SVG = "http://www.w3.org/2000/svg";

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAll(node, attrs);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  setAll(node, attrs);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function setAll(node, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v);
  }
}

// A token as people read it: the text it covers (spaces shown as ·), or the special token.
// The server's offsets count code points; a JS string counts UTF-16 units (an emoji is two),
// so the text is cut as an array of code points.
export function tokenLabels(data, text) {
  const chars = Array.from(text);
  return data.tokens.map((tok, i) => {
    if (data.special[i]) return tok;
    const [a, b] = data.offsets[i];
    const piece = chars.slice(a, b).join("");
    if (!piece.trim()) return piece.replace(/ /g, "·").replace(/\n/g, "⏎") || tok;
    return tok.startsWith("##") ? "##" + piece : piece.trim();
  });
}

// Diverging blue–white–orange for signed values in [-1, 1].
export function diverging(x) {
  const t = Math.max(-1, Math.min(1, x));
  const [r, g, b] = t < 0 ? [47, 111, 222] : [217, 98, 43];
  const s = Math.abs(t);
  return `rgb(${Math.round(255 + (r - 255) * s)},${Math.round(255 + (g - 255) * s)},${Math.round(255 + (b - 255) * s)})`;
}

// Sequential white → blue for weights in [0, 1].
export function sequential(x) {
  const s = Math.max(0, Math.min(1, x));
  return `rgb(${Math.round(255 - 208 * s)},${Math.round(255 - 144 * s)},${Math.round(255 - 33 * s)})`;
}

// One vector [d] as a strip of coloured cells, scaled by `scale` (values beyond saturate).
export function strip(values, scale, title) {
  const canvas = el("canvas", { class: "strip", width: values.length, height: 1, title });
  const ctx = canvas.getContext("2d");
  values.forEach((v, i) => {
    ctx.fillStyle = diverging(v / scale);
    ctx.fillRect(i, 0, 1, 1);
  });
  return canvas;
}

// A matrix [r, c] of weights in [0, 1] drawn on a small canvas, one pixel per cell.
export function heatmap(matrix, attrs = {}) {
  const n = matrix.length;
  const canvas = el("canvas", { width: n, height: n, ...attrs });
  const ctx = canvas.getContext("2d");
  const top = Math.max(...matrix.flat(), 1e-9);
  matrix.forEach((row, i) => row.forEach((v, j) => {
    ctx.fillStyle = sequential(Math.sqrt(v / top));
    ctx.fillRect(j, i, 1, 1);
  }));
  return canvas;
}

export function fmt(x, digits = 3) {
  return x === null || x === undefined ? "—" : Number(x).toFixed(digits);
}

export function percent(p) {
  return p >= 0.001 ? `${(100 * p).toFixed(1)}%` : `${(100 * p).toPrecision(2)}%`;
}

// A token's text with its spaces visible: " Paris" → "·Paris".
export function visible(text) {
  return text.replace(/ /g, "·").replace(/\n/g, "⏎");
}

// An SVG text label.
export function svgText(x, y, text, attrs = {}) {
  const t = svg("text", { x, y, ...attrs });
  t.textContent = text;
  return t;
}
