"""`show(trace)`: a trace's head view inline in Jupyter, drawn by the page's own head-view
module (static/js/headview.js), inlined — no server, no CDN."""

import json
import uuid
from dataclasses import dataclass

from ..analysis.attention import check_layer_head, edges, require_attentions
from ..trace import Trace
from .app import STATIC

STYLE = """
.hv text{font:13px ui-monospace,Menlo,Consolas,monospace;fill:#1d2330;cursor:pointer}
.hv text.focus{font-weight:700;fill:#d9622b}
.hv line{stroke:#2f6fde;stroke-linecap:round}.hv line.on{stroke:#d9622b}
"""


def labels(trace: Trace) -> list[str]:
    """Each token as people read it: the text it covers, or the special token itself."""
    out = []
    for tok, (a, b), special in zip(trace.tokens, trace.offsets, trace.special, strict=True):
        piece = trace.text[a:b]
        if special or not piece:
            out.append(tok)
        elif not piece.strip():
            out.append(piece.replace(" ", "·").replace("\n", "⏎"))
        else:
            out.append(("##" if tok.startswith("##") else "") + piece.strip())
    return out


@dataclass
class HeadView:
    """What `show` returns: Jupyter calls `_repr_html_`; `html` is the same text."""

    html: str

    def _repr_html_(self) -> str:
        return self.html


def _script_json(value) -> str:
    """JSON safe to put inside a <script> element."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def show(trace: Trace, layer: int | None = None, head: int | None = None) -> HeadView:
    """The head view of `trace` at `layer` (default: the middle one) for `head` (default: the
    heads' average), as an HTML object Jupyter displays inline. Hover a word to focus it."""
    attn = require_attentions(trace)  # [L, H, s, s]
    layer = attn.shape[0] // 2 if layer is None else layer
    check_layer_head(attn, layer, head)
    a = attn[layer].mean(0) if head is None else attn[layer, head]
    data = {"labels": labels(trace), "edges": edges(a, a.shape[-1])}
    source = (STATIC / "js" / "headview.js").read_text(encoding="utf-8")
    box = f"contextlens-{uuid.uuid4().hex[:12]}"
    what = "heads averaged" if head is None else f"head {head + 1}"
    return HeadView(
        f'<div class="contextlens-headview" style="display:inline-block"><style>{STYLE}</style>'
        f'<div style="font:12px sans-serif;color:#667085">{trace.model}: layer {layer + 1}, '
        f"{what}</div>"
        f'<div id="{box}"></div><script type="module">'
        f"const source = {_script_json(source)};"
        'const url = URL.createObjectURL(new Blob([source], {type: "text/javascript"}));'
        "const { renderHeadView } = await import(url);"
        f"renderHeadView(document.getElementById({_script_json(box)}), {_script_json(data)});"
        "</script></div>"
    )
