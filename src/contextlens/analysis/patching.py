"""Activation patching and ablation: change one activation of a run and watch the output move.

Two texts of the same token length that differ in a word — a clean one ("The capital of France
is") and a corrupted one ("… Italy is") — run once each, keeping the Recorder's points. Then the
corrupted text runs again with one site of the clean run copied in (the residual stream entering
layer l at position p, the attention or MLP output of layer l at p, or head h of layer l at every
position), one batch row per site, and each row's metric is read:

    decoder:  logit(target) − logit(foil) after the last token (target: the clean run's
              prediction, foil: the corrupted run's, unless given)
    encoder:  cosine of the sentence embedding with the clean run's (1 for the clean run)
    restored = (patched − corrupted) / (clean − corrupted)       1: the clean run's value

Ablation replaces chosen heads' outputs with zeros or with their mean over the text's positions.
The same points give a coreference probe: ablate a candidate's tokens and see how much the
pronoun's vector moves (`candidate_influence`).
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import ContextlensError
from ..lm import LanguageModel
from ..nn.record import Recorder
from .attribution import mean_row
from .lens import check_layer, encode, pieces, token_id

SITES = {
    "resid": "the residual stream entering the layer",
    "attn": "the attention output",
    "mlp": "the MLP output",
    "heads": "one head's output (every position)",
}
BATCH = 32  # patched runs per forward pass


@dataclass(frozen=True)
class Patch:
    """One site to copy from the source run: `site` of `layer`, at `position` (None: every
    position), for "heads" only head `head` (None: every head)."""

    site: str
    layer: int
    position: int | None = None
    head: int | None = None


def check_site(site: str) -> str:
    if site not in SITES:
        raise ContextlensError(f"unknown site {site!r}; use one of {', '.join(SITES)}")
    return site


def copy_in(x: torch.Tensor, rows: list[tuple[int, Patch]], source: torch.Tensor) -> torch.Tensor:
    """x [n, s, …] with each (row, patch) site taken from source [1, s, …] (a new tensor)."""
    y = x.clone()
    for row, p in rows:
        pos = slice(None) if p.position is None else p.position
        where = (row, pos) if p.head is None else (row, pos, p.head)
        y[where] = source[(0, pos) if p.head is None else (0, pos, p.head)].to(y)
    return y


def edits_for(runs: list[list[Patch]], source: dict) -> dict:
    """Recorder edits that give run i (batch row i) the patches `runs[i]` from `source`
    (points of the source run, `[1, s, …]` each)."""
    by_point = defaultdict(list)
    for row, patches in enumerate(runs):
        for p in patches:
            by_point[(p.site, p.layer)].append((row, p))

    def edit(key):
        return lambda x: copy_in(x, by_point[key], source[key])

    return {key: edit(key) for key in by_point}


def points(lm: LanguageModel, ids: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """One run's last hidden states `[1, s, d]` and every patchable point."""
    rec = Recorder(keep=frozenset(SITES))
    with torch.inference_mode():
        hidden = lm.model(ids, record=rec)
    return hidden, rec.points


@torch.inference_mode()
def run_patched(
    lm: LanguageModel, ids: torch.Tensor, runs: list[list[Patch]], source: dict
) -> torch.Tensor:
    """Run ids `[1, s]` once per entry of `runs`, each with its patches copied in from
    `source`: last hidden states `[len(runs), s, d]`."""
    rec = Recorder(edits=edits_for(runs, source))
    return lm.model(ids.expand(len(runs), -1), record=rec)


# ── the metric ─────────────────────────────────────────────────────────────────────────────
def logit_difference(lm: LanguageModel, target: int, foil: int) -> Callable:
    """hidden [n, s, d] -> logit(target) − logit(foil) after the last token `[n]`."""

    def metric(hidden: torch.Tensor) -> torch.Tensor:
        logits = lm.model.logits(hidden[:, -1]).float()
        return logits[:, target] - logits[:, foil]

    return metric


def embedding_cosine(lm: LanguageModel, clean_hidden: torch.Tensor) -> Callable:
    """hidden [n, s, d] -> cosine of the sentence embedding with the clean run's `[n]`."""
    mask = torch.ones(clean_hidden.shape[:2], dtype=torch.bool)
    clean = lm.pool(clean_hidden, mask)  # [1, d]

    def metric(hidden: torch.Tensor) -> torch.Tensor:
        full = torch.ones(hidden.shape[:2], dtype=torch.bool)
        return torch.cosine_similarity(lm.pool(hidden, full), clean, dim=-1)

    return metric


def same_length(lm: LanguageModel, clean: str, corrupted: str):
    """Both texts' tokens and ids `[1, s]`, or one line if their token counts differ."""
    (ec, ic), (ex, ix) = encode(lm, clean), encode(lm, corrupted)
    if len(ec.ids) != len(ex.ids):
        raise ContextlensError(
            f"the clean text is {len(ec.ids)} tokens and the corrupted one {len(ex.ids)}; "
            "patching pairs positions, so give texts of the same token length (swap a word for "
            "one of as many tokens; `contextlens tokens TEXT` shows them)"
        )
    if ec.ids == ex.ids:
        raise ContextlensError(
            "the clean and corrupted texts are the same tokens; change a word in the corrupted one"
        )
    return ec, ic, ex, ix


@dataclass
class PatchReport:
    """How much of the metric each patched site restores.

    restored: `[n_layers][seq]` for resid/attn/mlp, `[n_layers][n_heads]` for heads; 1 = the
    clean run's value, 0 = the corrupted run's. values: the metric of each patched run.
    differs: the positions where the two texts' tokens differ.
    """

    model: str
    clean: str
    corrupted: str
    tokens: list[str]
    corrupted_tokens: list[str]
    differs: list[int]
    site: str
    metric: str
    clean_value: float
    corrupted_value: float
    values: list[list[float]]
    restored: list[list[float]]


def grid_runs(site: str, n_layers: int, seq: int, n_heads: int) -> list[list[Patch]]:
    """One run per cell of the map, layer-major: layer × position, or layer × head."""
    if site == "heads":
        return [[Patch(site, i, None, h)] for i in range(n_layers) for h in range(n_heads)]
    return [[Patch(site, i, p)] for i in range(n_layers) for p in range(seq)]


def metric_for(lm, clean_hidden, corrupted_hidden, target, foil) -> tuple[Callable, str]:
    """The decoder's logit difference (target/foil: the clean and corrupted runs' predictions
    unless given) or an encoder's embedding cosine, with its description."""
    if lm.model.lm_head is None or not lm.config.causal:
        return embedding_cosine(lm, clean_hidden), "cosine of the embedding with the clean run's"
    with torch.inference_mode():
        predicted = [
            int(lm.model.logits(h[0, -1]).argmax()) for h in (clean_hidden, corrupted_hidden)
        ]
    t = token_id(lm, target) if target is not None else predicted[0]
    f = token_id(lm, foil, "foil") if foil is not None else predicted[1]
    if t == f:
        raise ContextlensError(
            f"target and foil are both {lm.tokenizer.decode([t])!r}; give a target and a foil, "
            "two different single tokens (e.g. ' Paris' and ' Rome')"
        )
    decode = lm.tokenizer.decode
    return logit_difference(lm, t, f), f"logit({decode([t])!r}) − logit({decode([f])!r})"


def patch(
    lm: LanguageModel,
    clean: str,
    corrupted: str,
    site: str = "resid",
    target: str | None = None,
    foil: str | None = None,
) -> PatchReport:
    """Patch each site of the clean run into the corrupted one (see the module's docstring)."""
    check_site(site)
    ec, ic, ex, ix = same_length(lm, clean, corrupted)
    clean_hidden, source = points(lm, ic)
    corrupted_hidden, _ = points(lm, ix)
    metric, what = metric_for(lm, clean_hidden, corrupted_hidden, target, foil)
    cfg = lm.config
    runs = grid_runs(site, cfg.n_layers, len(ec.ids), cfg.n_heads)
    values = torch.cat(
        [
            metric(run_patched(lm, ix, runs[i : i + BATCH], source))
            for i in range(0, len(runs), BATCH)
        ]
    )
    c, x = float(metric(clean_hidden)[0]), float(metric(corrupted_hidden)[0])
    restored = (values - x) / (c - x) if c != x else torch.zeros_like(values)
    cols = cfg.n_heads if site == "heads" else len(ec.ids)
    return PatchReport(
        lm.name,
        clean,
        corrupted,
        pieces(lm, ec.ids),
        pieces(lm, ex.ids),
        [i for i, (a, b) in enumerate(zip(ec.ids, ex.ids, strict=True)) if a != b],
        site,
        what,
        c,
        x,
        values.view(cfg.n_layers, cols).tolist(),
        restored.view(cfg.n_layers, cols).tolist(),
    )


# ── ablation ───────────────────────────────────────────────────────────────────────────────
def parse_heads(heads: list[tuple[int, int]], n_layers: int, n_heads: int) -> dict[int, list[int]]:
    """(layer, head) pairs grouped by layer, each checked against the model's shape."""
    if not heads:
        raise ContextlensError("give at least one head to ablate, as LAYER.HEAD (e.g. 3.1)")
    by_layer = defaultdict(list)
    for layer, head in heads:
        check_layer(layer, n_layers)
        if not 0 <= head < n_heads:
            raise ContextlensError(
                f"head {head} is out of range; the model has heads 0..{n_heads - 1}"
            )
        by_layer[layer].append(head)
    return by_layer


def ablation(heads: list[int], mode: str) -> Callable:
    """An edit of a "heads" point `[b, s, h, hd]`: the given heads zeroed or replaced by their
    mean over positions."""

    def edit(y: torch.Tensor) -> torch.Tensor:
        y = y.clone()
        y[:, :, heads] = 0 if mode == "zero" else y[:, :, heads].mean(1, keepdim=True)
        return y

    return edit


@dataclass
class AblationReport:
    """The output before and after ablating `heads` ([layer, head] pairs): for a decoder the
    next token's top candidates and the target's probability, for an encoder the cosine of the
    ablated sentence embedding with the original."""

    model: str
    text: str
    heads: list[tuple[int, int]]
    mode: str
    target: str | None
    before: float
    after: float
    top_before: list[tuple[str, float]]
    top_after: list[tuple[str, float]]


def ablate(
    lm: LanguageModel,
    text: str,
    heads: list[tuple[int, int]],
    mode: str = "zero",
    target: str | None = None,
    k: int = 5,
) -> AblationReport:
    """Zero- or mean-ablate `heads` (mean: over this text's positions) and compare the output."""
    if mode not in ("zero", "mean"):
        raise ContextlensError(f"unknown ablation {mode!r}; use zero or mean")
    cfg = lm.config
    by_layer = parse_heads(heads, cfg.n_layers, cfg.n_heads)
    _, ids = encode(lm, text)
    rec = Recorder(edits={("heads", i): ablation(h, mode) for i, h in by_layer.items()})
    with torch.inference_mode():
        clean = lm.model(ids)
        ablated = lm.model(ids, record=rec)
    pairs = sorted((i, h) for i, hs in by_layer.items() for h in hs)
    if lm.model.lm_head is None or not cfg.causal:
        cos = embedding_cosine(lm, clean)(ablated)
        return AblationReport(lm.name, text, pairs, mode, None, 1.0, float(cos[0]), [], [])
    probs = lm.model.logits(torch.cat([clean, ablated])[:, -1]).float().softmax(-1)  # [2, vocab]
    t = token_id(lm, target) if target is not None else int(probs[0].argmax())
    top = probs.topk(k)
    decode = lm.tokenizer.decode
    tops = [
        [(decode([int(j)]), float(p)) for p, j in zip(ps, js, strict=True)]
        for ps, js in zip(top.values, top.indices, strict=True)
    ]
    return AblationReport(
        lm.name, text, pairs, mode, decode([t]), float(probs[0, t]), float(probs[1, t]), *tops
    )


# ── coreference: which candidate moves the pronoun ─────────────────────────────────────────
@dataclass(frozen=True)
class Mentions:
    """A text's pronoun and candidates, each as indices into the text's tokens."""

    text: str
    pronoun: list[int]
    candidates: list[list[int]]


def blanked_rows(lm: LanguageModel, cases: list[Mentions]) -> tuple[list[list[int]], list]:
    """The ids of 1 + c rows per case (the clean text, then each candidate blanked) and, per
    row, the token positions to blank. A causal model's text is cut after the pronoun: later
    tokens cannot reach it."""
    rows, blanks = [], []
    for case in cases:
        ids = lm.tokenize(case.text).ids
        keep = max(case.pronoun) + 1 if lm.config.causal else len(ids)
        for tokens in ([], *case.candidates):
            rows.append(ids[:keep])
            blanks.append([t for t in tokens if t < keep])
    return rows, blanks


@torch.inference_mode()
def candidates_influence(lm: LanguageModel, cases: list[Mentions]) -> list[torch.Tensor]:
    """How far each case's pronoun vector moves when a candidate's tokens are replaced by the
    average token (the mean embedding row): 1 − cos(clean, blanked) of the pronoun's tokens'
    mean vector at every layer, `[n_layers + 1, c]` per case. All cases run as one padded
    batch; a candidate the pronoun cannot see (after it, in a causal model) moves it by 0."""
    rows, blanks = blanked_rows(lm, cases)
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])  # [R, s]
    pad_mask = torch.tensor([[True] * len(r) + [False] * (width - len(r)) for r in rows])
    avg = mean_row(lm).to(lm.dtype)

    def edit(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        for row, tokens in enumerate(blanks):
            x[row, tokens] = avg
        return x

    rec = Recorder(hidden_states=True, edits={("token", 0): edit})
    lm.model(ids, pad_mask, record=rec)
    hidden = rec.saved["hidden_states"]  # [L+1, R, s, d]
    out, start = [], 0
    for case, n in zip(cases, (1 + len(c.candidates) for c in cases), strict=True):
        h = hidden[:, start : start + n, case.pronoun].float().mean(2)  # [L+1, 1 + c, d]
        moved = 1 - torch.cosine_similarity(h[:, :1], h[:, 1:], dim=-1)
        seen = torch.tensor([bool(b) for b in blanks[start + 1 : start + n]], device=moved.device)
        out.append(moved * seen)
        start += n
    return out


def candidate_influence(
    lm: LanguageModel, text: str, pronoun: list[int], candidates: list[list[int]]
) -> torch.Tensor:
    """`candidates_influence` of one text: `[n_layers + 1, c]`. Tokens are indices into the
    text's tokens."""
    return candidates_influence(lm, [Mentions(text, pronoun, candidates)])[0]
