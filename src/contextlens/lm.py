"""A transformer language model you can look inside: tokenize, trace, embed (and, for decoders,
predict the next token). Built by `contextlens.load`."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .errors import ContextlensError
from .io.tokenizer import Encoded, Tokenizer
from .models import Transformer
from .nn.record import Recorder
from .trace import Trace

Texts = str | Sequence[str]


@dataclass(frozen=True)
class Pooling:
    """How token vectors become one sentence vector (sentence-transformers' 1_Pooling/Normalize)."""

    mode: str = "mean"  # "mean" over real tokens, "cls" (first token), "max", "last"
    normalize: bool = False  # L2-normalise the result
    max_length: int | None = None  # the length the embedding model was trained for


def _as_list(texts: Texts) -> tuple[list[str], bool]:
    if isinstance(texts, str):
        return [texts], True
    texts = list(texts)
    if not texts:
        raise ContextlensError("no texts given; pass a string or a non-empty list of strings")
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise ContextlensError(f"expected text, got {type(bad[0]).__name__}; pass strings")
    return texts, False


class LanguageModel:
    def __init__(self, name: str, model: Transformer, tokenizer: Tokenizer, pooling: Pooling):
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling

    @property
    def config(self):
        return self.model.cfg

    @property
    def kind(self) -> str:
        return "decoder" if self.config.causal else "encoder"

    @property
    def max_length(self) -> int:
        return self.config.max_positions

    def __repr__(self) -> str:
        c = self.config
        return (
            f"LanguageModel({self.name!r}: {c.architecture} {self.kind}, {c.n_layers} layers × "
            f"{c.n_heads} heads, d_model={c.d_model}, vocab={c.vocab_size})"
        )

    # ── text → tokens ───────────────────────────────────────────────────────────────────────
    def tokenize(self, texts: Texts, truncate: bool = False, limit: int | None = None):
        """Encode text(s); over-long texts raise (naming the limit) unless truncate=True."""
        items, single = _as_list(texts)
        limit = limit or self.max_length
        for i, t in enumerate(items):
            if not t.strip():
                where = "" if single else f" (item {i})"
                raise ContextlensError(f"text is empty{where}; give at least one word")
        encoded = [self._fit(e, limit, truncate) for e in self.tokenizer.encode(items)]
        return encoded[0] if single else encoded

    def _fit(self, e: Encoded, limit: int, truncate: bool) -> Encoded:
        n = len(e.ids)
        if n <= limit:
            return e
        if not truncate:
            raise ContextlensError(
                f"text is {n} tokens, over {self.name}'s limit of {limit}; shorten it or pass "
                "truncate=True (--truncate in the CLI)"
            )
        tail = 0  # keep the closing special tokens ([SEP]) after the cut
        while tail < n and e.special[n - 1 - tail]:
            tail += 1
        keep = list(range(limit - tail)) + list(range(n - tail, n))
        return Encoded(*([getattr(e, f)[i] for i in keep] for f in Encoded.__dataclass_fields__))

    # ── the forward pass ────────────────────────────────────────────────────────────────────
    @staticmethod
    def _batch(encoded: list[Encoded]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad to the longest: (ids [b, s], pad_mask [b, s] True for real tokens)."""
        s = max(len(e.ids) for e in encoded)
        ids = torch.zeros(len(encoded), s, dtype=torch.long)
        mask = torch.zeros(len(encoded), s, dtype=torch.bool)
        for i, e in enumerate(encoded):
            ids[i, : len(e.ids)] = torch.tensor(e.ids)
            mask[i, : len(e.ids)] = True
        return ids, mask

    @torch.inference_mode()
    def trace(
        self,
        texts: Texts,
        *,
        hidden_states: bool = True,
        attentions: bool = True,
        qkv: bool = False,
        layers: Sequence[int] | None = None,
        truncate: bool = False,
    ) -> Trace | list[Trace]:
        """Run the model and keep the intermediates asked for (see `Trace` for shapes).

        `layers` restricts recording to some layers (0-based; hidden-state index n_layers is the
        final output). A list of texts is run as one padded batch and gives a list of traces.
        """
        items, single = _as_list(texts)
        n = self.config.n_layers
        if layers is not None:
            layers = sorted(set(int(x) for x in layers))
            bad = [x for x in layers if not 0 <= x <= n]
            if bad:
                raise ContextlensError(
                    f"layer {bad[0]} is out of range; {self.name} has layers 0..{n - 1} "
                    f"(hidden states 0..{n})"
                )
        encoded = self.tokenize(items, truncate=truncate)
        ids, mask = self._batch(encoded)
        rec = Recorder(hidden_states, attentions, qkv, frozenset(layers) if layers else None)
        self.model(ids, mask, record=rec)

        def stacked(kind: str, b: int, length: int) -> torch.Tensor | None:
            saved = rec.saved.get(kind)
            if not saved:
                return None
            parts = [saved[i] for i in sorted(saved)]
            if kind == "hidden_states":  # [b, s, d] each
                return torch.stack([p[b, :length] for p in parts])
            if kind == "attentions":  # [b, h, s, s] each
                return torch.stack([p[b, :, :length, :length] for p in parts])
            return torch.stack([p[:, b, :, :length] for p in parts])  # qkv: [3, b, h, s, hd]

        traces = [
            Trace(
                text=t,
                tokens=e.tokens,
                ids=e.ids,
                offsets=e.offsets,
                special=e.special,
                hidden_states=stacked("hidden_states", b, len(e.ids)),
                attentions=stacked("attentions", b, len(e.ids)),
                qkv=stacked("qkv", b, len(e.ids)),
                layers=layers,
                model=self.name,
            )
            for b, (t, e) in enumerate(zip(items, encoded, strict=True))
        ]
        return traces[0] if single else traces

    # ── sentence embeddings ─────────────────────────────────────────────────────────────────
    @torch.inference_mode()
    def embed(self, texts: Texts, batch_size: int = 32, truncate: bool = False) -> torch.Tensor:
        """One vector per text with the model's own pooling: `[n, d_model]` (`[d_model]` for one).

        Texts are sorted by length and run in padded batches of `batch_size`.
        """
        if batch_size < 1:
            raise ContextlensError(f"batch_size must be ≥ 1 (got {batch_size})")
        items, single = _as_list(texts)
        encoded = self.tokenize(items, truncate=truncate, limit=self.pooling.max_length)
        order = sorted(range(len(items)), key=lambda i: len(encoded[i].ids))
        out = torch.empty(len(items), self.config.d_model)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask = self._batch([encoded[i] for i in chunk])
            out[chunk] = self.pool(self.model(ids, mask), mask)
        return out[0] if single else out

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """hidden [b, s, d], mask [b, s] -> [b, d] by the model's pooling."""
        m = mask.unsqueeze(-1).to(hidden.dtype)  # [b, s, 1]
        mode = self.pooling.mode
        if mode == "mean":
            v = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
        elif mode == "cls":
            v = hidden[:, 0]
        elif mode == "max":
            v = hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).amax(1)
        else:  # "last": the last real token (decoders)
            v = hidden[torch.arange(hidden.shape[0]), mask.sum(1) - 1]
        return torch.nn.functional.normalize(v, dim=-1) if self.pooling.normalize else v
