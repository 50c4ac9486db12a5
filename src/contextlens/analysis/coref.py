"""Coreference probe: does a pronoun attend to (or resemble) the noun it refers to?

Each candidate antecedent is scored by the pronoun's attention to the candidate's head word (the
last word of the phrase) — in one head, averaged over a layer's heads, over all layers, or rolled
out — and by the cosine of the two words' contextual vectors at a layer. The highest score wins.

`evaluate` runs a set of cases, picks the best head / layer on the "dev" half (alternate groups
of cases in file order; twin sentences stay together) and reports every method on the other,
"test", half, beside the first-candidate, majority and nearest-candidate baselines.
"""

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..errors import ContextlensError
from ..io.benchmarks import CorefCase, Span
from ..trace import Trace
from .attention import check_layer_head, require_attentions, rollout, token_weights
from .patching import Mentions, candidates_influence
from .words import Word, find, locate, words

DETERMINERS = {"the", "a", "an", "this", "that", "his", "her", "their", "its"}


# ── finding the words ───────────────────────────────────────────────────────────────────────
def _head(units: list[Word], span: Span) -> Word:
    """The last word (not punctuation) inside a character span: the head of a noun phrase."""
    inside = [u for u in units if not u.special and u.start < span[1] and span[0] < u.end]
    content = [u for u in inside if any(c.isalnum() for c in u.text)]
    if not content:
        raise ContextlensError(f"characters {span[0]}..{span[1]} hold no word")
    return content[-1]


def mention(units: list[Word], trace: Trace, phrase: str, before: int) -> Word:
    """The head word of `phrase` in the text: the phrase as written, else without its leading
    determiner, else its last word; of several occurrences, the last one before character
    `before` (the pronoun), else the first."""
    parts = phrase.split()
    tries = [phrase]
    if len(parts) > 1 and parts[0].casefold() in DETERMINERS:
        tries.append(" ".join(parts[1:]))
    tries.append(parts[-1] if parts else phrase)
    for t in tries:
        found = find(trace, t, units)
        if found:
            earlier = [w for w in found if w.end <= before]
            w = earlier[-1] if earlier else found[0]
            return _head(units, (w.start, w.end))
    raise ContextlensError(f"candidate {phrase!r} is not in the text; its words must appear in it")


def pronoun_word(units: list[Word], trace: Trace, case: CorefCase) -> Word:
    if case.pronoun_span is not None:
        return _head(units, case.pronoun_span)
    return locate(trace, case.pronoun, None, units)


def mentions(trace: Trace, case: CorefCase) -> tuple[Word, list[Word]]:
    """(pronoun, candidate heads) of a case in its trace."""
    units = words(trace)
    pron = pronoun_word(units, trace, case)
    spans = case.candidate_spans or (None,) * len(case.candidates)
    heads = [
        _head(units, s) if s is not None else mention(units, trace, c, pron.start)
        for c, s in zip(case.candidates, spans, strict=True)
    ]
    return pron, heads


# ── scores ──────────────────────────────────────────────────────────────────────────────────
@dataclass
class Scores:
    """A case's candidate scores, each with the candidates last.

    attention: `[L, H, c]` — the pronoun's attention to each candidate's head word.
    rollout: `[L, c]` — rolled-out attention from the pronoun.
    similarity: `[L+1, c]` — cosine of pronoun and candidate vectors per layer.
    distance: `[c]` — how far (in tokens) each candidate is from the pronoun.
    influence: `[L+1, c]` — how far the pronoun's vector moves when the candidate's tokens are
        ablated (`patching.candidate_influence`); filled by `features`.
    """

    pronoun: Word
    candidates: list[Word]
    attention: torch.Tensor
    rollout: torch.Tensor
    similarity: torch.Tensor
    distance: torch.Tensor
    influence: torch.Tensor | None = None


def score(trace: Trace, case: CorefCase) -> Scores:
    """Score every candidate of `case` on its trace (needs hidden states and attentions)."""
    attn = require_attentions(trace)
    pron, heads = mentions(trace, case)
    s = attn.shape[-1]
    rows = token_weights(pron, s) / len(pron.tokens)  # [s]
    cols = torch.stack([token_weights(h, s) for h in heads], 1)  # [s, c]
    hidden = trace.hidden_states.float()
    p_vec = hidden[:, list(pron.tokens)].mean(1)  # [L+1, d]
    c_vec = torch.stack([hidden[:, list(h.tokens)].mean(1) for h in heads], 1)  # [L+1, c, d]
    return Scores(
        pron,
        heads,
        torch.einsum("q,lhqk,kc->lhc", rows, attn, cols),
        torch.einsum("q,lqk,kc->lc", rows, rollout(attn), cols),
        torch.nn.functional.cosine_similarity(p_vec[:, None], c_vec, dim=-1),
        torch.tensor([abs(min(pron.tokens) - max(h.tokens)) for h in heads], dtype=torch.float),
    )


# ── one text: which word does its pronoun point to ─────────────────────────────────────────
PRONOUNS = {
    "it", "he", "she", "they", "him", "her", "them", "its", "his", "their", "theirs", "hers",
    "himself", "herself", "itself", "themselves",
}  # fmt: skip
SUBJECTS = {"it", "he", "she", "they"}
FUNCTION_WORDS = PRONOUNS | DETERMINERS | {
    "i", "you", "we", "me", "us", "my", "your", "our", "and", "or", "but", "because", "so", "if",
    "when", "while", "than", "then", "of", "to", "in", "on", "at", "by", "for", "with", "from",
    "into", "over", "under", "about", "after", "before", "is", "was", "are", "were", "be",
    "been", "being", "am", "do", "does", "did", "have", "has", "had", "not", "no", "too", "very",
    "who", "which", "what", "that", "these", "those", "there", "here", "as", "also", "just",
    "can", "could", "will", "would", "should", "may", "might", "must", "all", "some", "any",
}  # fmt: skip
MAX_CANDIDATES = 5


def find_pronoun(units: list[Word], trace: Trace, pronoun: str | None, occurrence: int | None):
    """The pronoun's word: `pronoun` (its `occurrence`-th), or else the text's first subject
    pronoun (it, he, she, they), or else its first pronoun."""
    if pronoun is None:
        found = [u for u in units if not u.special and u.text.casefold() in PRONOUNS]
        found.sort(key=lambda u: u.text.casefold() not in SUBJECTS)  # "she" before "her"
        if not found:
            raise ContextlensError(
                "the text has no pronoun (it, he, she, they, …); name the word to follow with "
                "pronoun"
            )
        pronoun, occurrence = found[0].text, occurrence or 1
    return locate(trace, pronoun, occurrence, units)


def propose_candidates(units: list[Word], pronoun: Word) -> list[str]:
    """Words the pronoun may point to, guessed from the text: the content words before it
    (not function words, not the pronoun), preferring those right after a determiner ("the
    animal") — nouns, mostly; the nearest MAX_CANDIDATES, in text order."""
    content = [
        (i, u)
        for i, u in enumerate(units)
        if not u.special
        and u.text.isalpha()
        and u.text.casefold() not in FUNCTION_WORDS
        and u.start != pronoun.start
    ]
    before = [(i, u) for i, u in content if u.end <= pronoun.start]
    nouns = [(i, u) for i, u in before if i and units[i - 1].text.casefold() in DETERMINERS]
    pool = nouns if len(nouns) >= 2 else before if len(before) >= 2 else content
    names = list(dict.fromkeys(u.text for _, u in pool))
    if len(names) < 2:
        raise ContextlensError(
            "the text has fewer than two words besides the pronoun to choose between; "
            "give the candidates"
        )
    return names[-MAX_CANDIDATES:]


@dataclass
class Vote:
    """One way of choosing the antecedent: its scores `[c]` for the candidates, and the winner."""

    method: str
    scores: torch.Tensor
    winner: str


def votes(scores: Scores, given: list[str], head: tuple[int, int] | None = None) -> list[Vote]:
    """Each way of choosing, named, with its scores: every layer's heads averaged, all layers
    and heads, rollout, the strongest head in this text, similarity at the last layer, and
    `head` (layer, head) when given."""
    s = scores
    check_layer_head(s.attention, *(head or (None, None)))
    hl, hh = divmod(int(s.attention.amax(-1).flatten().argmax()), s.attention.shape[1])
    rows = [
        (f"attention, layer {n} (heads averaged)", s.attention[n].mean(0))
        for n in range(s.attention.shape[0])
    ]
    rows += [
        ("attention, all layers and heads", s.attention.mean((0, 1))),
        ("attention rollout, last layer", s.rollout[-1]),
        (f"strongest head in this sentence: layer {hl} head {hh}", s.attention[hl, hh]),
        ("similarity, last layer", s.similarity[-1]),
    ]
    if head:
        rows.append((f"attention, layer {head[0]} head {head[1]}", s.attention[head]))
    return [Vote(name, v, given[int(v.argmax())]) for name, v in rows]


@dataclass
class CorefReport:
    """Which candidate the pronoun of one text points to.

    given: the candidates as the user wrote them, or as proposed from the text (`proposed`).
    scores: the pronoun's attention, rollout and similarity to each candidate (see `Scores`).
    methods: each way of choosing and its winner (see `votes`).
    """

    model: str
    text: str
    given: list[str]
    proposed: bool
    scores: Scores
    methods: list[Vote]


def coref_report(
    trace: Trace,
    pronoun: str | None,
    candidates: list[str] | None,
    occurrence: int | None = None,
    head: tuple[int, int] | None = None,
) -> CorefReport:
    """Score the candidates for the pronoun of a traced text (hidden states and attentions).
    Without a pronoun, the text's first subject pronoun; without candidates, proposed ones;
    `head` (layer, head) adds that head's vote."""
    units = words(trace)
    p = find_pronoun(units, trace, pronoun, occurrence)
    proposed = candidates is None
    names = propose_candidates(units, p) if proposed else candidates
    if len(names) < 2:
        raise ContextlensError("give at least two candidates to choose between")
    case = CorefCase(trace.text, p.text, tuple(names), pronoun_span=(p.start, p.end))
    s = score(trace, case)
    return CorefReport(
        trace.model, trace.text, list(names), proposed, s, votes(s, list(names), head)
    )


def probe(model, case: CorefCase) -> Scores:
    """Trace one case and score its candidates."""
    if len(case.candidates) < 2:
        raise ContextlensError("give at least two candidates to choose between")
    return score(model.trace(case.text), case)


# ── evaluation ──────────────────────────────────────────────────────────────────────────────
def credit(scores: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Per-case credit for picking the highest score: `[N, ..., c]`, answers `[N]` → `[N, ...]`.
    1 if the answer alone scores highest, 1/k if it ties with k-1 others, else 0."""
    top = scores == scores.amax(-1, keepdim=True)
    idx = answers.view(-1, *([1] * (scores.dim() - 1))).expand(*scores.shape[:-1], 1)
    return top.gather(-1, idx).squeeze(-1) / top.sum(-1)


def split(cases: Sequence[CorefCase]) -> torch.Tensor:
    """`[N]` True for the dev half: groups of cases alternate dev, test in order of appearance."""
    order: dict[str, int] = {}
    for c in cases:
        order.setdefault(c.group or c.text, len(order))
    return torch.tensor([order[c.group or c.text] % 2 == 0 for c in cases])


def with_influence(model, texts: list[str], scores: list[Scores]) -> list[Scores]:
    """The scores with their candidates' causal influence on the pronoun (one batched pass)."""
    cases = [
        Mentions(t, list(s.pronoun.tokens), [list(h.tokens) for h in s.candidates])
        for t, s in zip(texts, scores, strict=True)
    ]
    for s, moved in zip(scores, candidates_influence(model, cases), strict=True):
        s.influence = moved
    return scores


@dataclass
class Features:
    """Scores of N evaluated cases, padded to c candidates with -inf."""

    attention: torch.Tensor  # [N, L, H, c]
    rollout: torch.Tensor  # [N, L, c]
    similarity: torch.Tensor  # [N, L+1, c]
    distance: torch.Tensor  # [N, c] (+inf for padding)
    answers: torch.Tensor  # [N]
    n_candidates: torch.Tensor  # [N]
    influence: torch.Tensor  # [N, L+1, c]


def features(
    model,
    cases: Sequence[CorefCase],
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[CorefCase], Features, Counter]:
    """Trace and score the cases (shortest first, in padded batches); returns the cases kept
    (in their original order, which `split` relies on), their features and a count of the
    reasons others were skipped."""
    skipped: Counter = Counter()
    usable = []
    for n, case in enumerate(cases):
        if case.answer is None:
            skipped["no answer among the candidates"] += 1
            continue
        try:
            usable.append((len(model.tokenize(case.text).ids), n, case))
        except ContextlensError:
            skipped[f"longer than {model.name}'s {model.max_length} tokens"] += 1
    usable.sort(key=lambda x: x[0])
    scored: list[tuple[int, CorefCase, Scores]] = []
    for start in range(0, len(usable), batch_size):
        chunk = usable[start : start + batch_size]
        traces = model.trace([c.text for _, _, c in chunk])
        found = []
        for (_, n, case), trace in zip(chunk, traces, strict=True):
            try:
                found.append((n, case, score(trace, case)))
            except ContextlensError:
                skipped["a candidate or the pronoun was not found in the text"] += 1
        if found:
            texts = [case.text for _, case, _ in found]
            moved = with_influence(model, texts, [r for _, _, r in found])
            scored += [(n, case, r) for (n, case, _), r in zip(found, moved, strict=True)]
        if progress:
            progress(min(start + batch_size, len(usable)), len(usable))
    if not scored:
        raise ContextlensError("no case could be scored; check the file's format (--format)")
    scored.sort(key=lambda x: x[0])
    kept = [case for _, case, _ in scored]
    rows = [r for _, _, r in scored]
    c = max(len(r.candidates) for r in rows)

    def pad(t: torch.Tensor, value: float) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, c - t.shape[-1]), value=value)

    inf = float("inf")
    return (
        kept,
        Features(
            torch.stack([pad(r.attention, -inf) for r in rows]),
            torch.stack([pad(r.rollout, -inf) for r in rows]),
            torch.stack([pad(r.similarity, -inf) for r in rows]),
            torch.stack([pad(r.distance, inf) for r in rows]),
            torch.tensor([k.answer for k in kept]),
            torch.tensor([len(r.candidates) for r in rows]),
            torch.stack([pad(r.influence, -inf) for r in rows]),
        ),
        skipped,
    )


@dataclass
class MethodResult:
    method: str
    choice: str  # the head / layer picked on dev ("" if nothing was picked)
    dev: float
    test: float


def _best(acc_dev: torch.Tensor) -> int:
    """Flat index of the best dev accuracy (the first of equals)."""
    return int(acc_dev.flatten().argmax())


def evaluate(f: Features, dev: torch.Tensor) -> dict:
    """Accuracy per method on the dev and test halves (`dev` `[N]` bool), choosing heads and
    layers on dev; also the per-layer test accuracies that show where the signal is."""
    if dev.all() or not dev.any():
        raise ContextlensError("need cases in both halves; give at least two groups of cases")
    test = ~dev
    n_heads = f.attention.shape[2]
    per_head = credit(f.attention, f.answers)  # [N, L, H]
    per_layer = credit(f.attention.mean(2), f.answers)  # [N, L]
    all_layers = credit(f.attention.mean((1, 2)), f.answers)  # [N]
    rolled = credit(f.rollout, f.answers)  # [N, L]
    similar = credit(f.similarity, f.answers)  # [N, L+1]
    moved = credit(f.influence, f.answers)  # [N, L+1]
    first = (f.answers == 0).float()
    majority_index = int(torch.bincount(f.answers[dev]).argmax())
    majority = (f.answers == majority_index).float()
    nearest = credit(-f.distance, f.answers)

    def mean(x: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        return x[part].mean(0)

    h = _best(mean(per_head, dev))
    results = [
        MethodResult("first candidate", "", float(mean(first, dev)), float(mean(first, test))),
        MethodResult(
            "majority",
            f"candidate {majority_index + 1}",
            float(mean(majority, dev)),
            float(mean(majority, test)),
        ),
        MethodResult(
            "nearest candidate", "", float(mean(nearest, dev)), float(mean(nearest, test))
        ),
        MethodResult(
            "attention, best head",
            f"layer {h // n_heads} head {h % n_heads}",
            float(mean(per_head, dev).flatten()[h]),
            float(mean(per_head, test).flatten()[h]),
        ),
    ]
    for name, acc in (
        ("attention, best layer (heads averaged)", per_layer),
        ("attention rollout, best layer", rolled),
        ("similarity, best layer", similar),
        ("candidate ablation moves the pronoun, best layer", moved),
    ):
        i = _best(mean(acc, dev))
        results.append(
            MethodResult(name, f"layer {i}", float(mean(acc, dev)[i]), float(mean(acc, test)[i]))
        )
    results.append(
        MethodResult(
            "attention, all layers and heads",
            "",
            float(mean(all_layers, dev)),
            float(mean(all_layers, test)),
        )
    )
    return {
        "cases": len(f.answers),
        "dev": int(dev.sum()),
        "test": int(test.sum()),
        "methods": [r.__dict__ for r in results],
        "test_by_layer": {
            "attention (heads averaged)": mean(per_layer, test).tolist(),
            "rollout": mean(rolled, test).tolist(),
            "similarity": mean(similar, test).tolist(),
            "candidate ablation": mean(moved, test).tolist(),
        },
        "test_by_head": mean(per_head, test).tolist(),
    }


@dataclass
class CorefEvaluation:
    """`evaluate` on the cases of one file: how many were read and skipped (by reason), the
    dev/test split and every method's accuracy (see `evaluate`)."""

    model: str
    file: str
    read: int
    skipped: dict[str, int]
    cases: int
    dev: int
    test: int
    methods: list[dict]
    test_by_layer: dict[str, list[float]]
    test_by_head: list[list[float]]


def evaluate_file(
    model,
    file: str,
    cases: Sequence[CorefCase],
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> CorefEvaluation:
    """Trace, score and evaluate the cases read from `file` (see `features`, `evaluate`)."""
    kept, feats, skipped = features(model, cases, batch_size, progress)
    return CorefEvaluation(
        model.name, str(file), len(cases), dict(skipped), **evaluate(feats, split(kept))
    )


def limit_cases(cases: list[CorefCase], limit: int | None) -> list[CorefCase]:
    """The first `limit` cases (all if None), plus the rest of the last one's group of twins."""
    if limit is None:
        return cases
    if limit < 1:
        raise ContextlensError(f"--limit must be ≥ 1 (got {limit})")
    out = cases[:limit]
    key = out[-1].group or out[-1].text
    for c in cases[limit:]:
        if (c.group or c.text) != key:
            break
        out.append(c)
    return out
