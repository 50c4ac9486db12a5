"""A transformer language model you can look inside: tokenize, trace, embed (and, for decoders,
predict the next token). Built by `contextlens.load`."""

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from .errors import ContextlensError, Truncated
from .io.tokenizer import Encoded, Tokenizer
from .metrics import check_temperature
from .models import Transformer
from .nn.record import Recorder
from .sampling import check_sampling, choose
from .trace import EmbeddingParts, Trace

Texts = str | Sequence[str]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}


def available_devices() -> list[str]:
    """The devices this torch can run on here, e.g. ["cpu"] or ["cpu", "cuda", "cuda:1"]."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ["cpu"] + (["cuda"] if n else []) + [f"cuda:{i}" for i in range(1, n)]


def resolve_device(device: str | torch.device) -> torch.device:
    """ "cpu", "cuda", "cuda:1" … as a torch device, or a one-line error naming what exists."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ContextlensError(
            f"unknown device {device!r}; available here: {', '.join(available_devices())}"
        )
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            why = (
                "this torch was built without CUDA"
                if torch.version.cuda is None
                else ("no CUDA GPU is visible")
            )
            raise ContextlensError(
                f"device {device!r} asked for, but {why}; available here: "
                f"{', '.join(available_devices())}"
            )
        if (dev.index or 0) >= n:
            raise ContextlensError(
                f"device {device!r} does not exist; available here: "
                f"{', '.join(available_devices())}"
            )
    return dev


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """torch.float32 / bfloat16 / float16, or their names ("float32", "bf16", "fp16" …)."""
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str):
        name = dtype.lower().removeprefix("torch.")
        name = DTYPE_ALIASES.get(name, name)
        if name in DTYPES:
            return DTYPES[name]
    raise ContextlensError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")


def render_chat(template: str, messages: list[dict], tokenizer: Tokenizer) -> str:
    """Render a Hugging Face chat template (Jinja) with a generation prompt."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise ContextlensError(f"the chat template refused the messages: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    special = {
        name: tokenizer.tok.id_to_token(i) if i is not None else ""
        for name, i in (
            ("bos_token", tokenizer.bos_id),
            ("eos_token", (tokenizer.eos_ids or (None,))[0]),
        )
    }
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=True, **special
    )


@dataclass(frozen=True)
class Pooling:
    """How token vectors become one sentence vector (sentence-transformers' 1_Pooling/Normalize)."""

    mode: str = "mean"  # "mean" over real tokens, "cls" (first token), "max", "last"
    normalize: bool = False  # L2-normalise the result
    max_length: int | None = None  # the length the embedding model was trained for (None: all)


def side_by_side(run: Callable[[list[int]], None], batches: list, device: torch.device) -> None:
    """`run(batch)` for every batch, in inference mode. On the CPU with T > 1 torch threads and
    several batches, T batches run at once, each on one thread (torch's thread count is 1 while
    they run, then restored): a team of threads inside every product scales poorly on a batch's
    small products and stalls whenever the OS deschedules one member, while whole batches on
    separate threads never wait for each other (bench/RESULTS.md, "Engine")."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads < 2 or len(batches) < 2:
        for batch in batches:
            run(batch)
        return

    def work(batch: list[int]) -> None:
        with torch.inference_mode():  # per thread, like every grad mode
            run(batch)

    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(min(threads, len(batches))) as pool:
            list(pool.map(work, batches))
    finally:
        torch.set_num_threads(threads)


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
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def weights(self) -> str:
        """ "native" when some layer keeps its weights as the GGUF file stores them, else
        "exact" (float weights: the parity-tested numbers)."""
        from .nn.quant import QuantEmbedding, QuantLinear  # lazily: it brings the gguf package

        stored = any(isinstance(m, QuantLinear | QuantEmbedding) for m in self.model.modules())
        return "native" if stored else "exact"

    def to(
        self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
    ) -> "LanguageModel":
        """Move the model to `device` ("cpu", "cuda", "cuda:1") and/or cast it to `dtype`
        (torch.float32, bfloat16, float16 or their names), in place; returns the model.

        Everything a pass makes — masks, positions, KV cache, recorded tensors — follows.
        Casting back to float32 after a narrower dtype does not restore the digits lost (load
        again for the exact numbers). Unavailable devices and unsupported dtypes are a one-line
        error naming what works.
        """
        dev = resolve_device(device) if device is not None else None
        dt = resolve_dtype(dtype) if dtype is not None else None
        self.model.to(device=dev, dtype=dt)
        return self

    @property
    def kind(self) -> str:
        return "decoder" if self.config.causal else "encoder"

    @property
    def max_length(self) -> int:
        return self.config.max_positions

    def __repr__(self) -> str:
        c = self.config
        where = "" if self.device.type == "cpu" else f", {self.device}"
        where += (
            "" if self.dtype == torch.float32 else f", {str(self.dtype).removeprefix('torch.')}"
        )
        return (
            f"LanguageModel({self.name!r}: {c.architecture} {self.kind}, {c.n_layers} layers × "
            f"{c.n_heads} heads, d_model={c.d_model}, vocab={c.vocab_size}{where})"
        )

    # ── text → tokens ───────────────────────────────────────────────────────────────────────
    def tokenize(
        self,
        texts: Texts,
        truncate: bool = False,
        limit: int | None = None,
        keep: str = "first",
        *,
        why: str = "",
    ):
        """Encode text(s). A text over `limit` tokens (default: the model's) raises, naming the
        limit (and `why` it is that), unless truncate=True: then it is cut to its `keep="first"`
        tokens (or the "last", for a prompt to continue), special tokens kept, with a
        `Truncated` warning."""
        items, single = _as_list(texts)
        encoded = self._encode(items, single, truncate, limit, keep, why)
        return encoded[0] if single else encoded

    def _encode(
        self,
        items: list[str],
        single: bool,
        truncate: bool = False,
        limit: int | None = None,
        keep: str = "first",
        why: str = "",
    ) -> list[Encoded]:
        """`tokenize` for texts `_as_list` has checked; messages name "text 2" only in a list."""
        limit = limit or self.max_length
        for i, t in enumerate(items):
            if not t.strip():
                where = "" if single else f" (item {i})"
                raise ContextlensError(f"text is empty{where}; give at least one word")
        return [
            self._fit(e, limit, truncate, keep, "text" if single else f"text {i + 1}", why)
            for i, e in enumerate(self.tokenizer.encode(items))
        ]

    def _fit(
        self, e: Encoded, limit: int, truncate: bool, keep: str, label: str, why: str
    ) -> Encoded:
        n = len(e.ids)
        if n <= limit:
            return e
        over = f"{label} is {n} tokens, over {self.name}'s limit of {limit}{why}"
        if not truncate:
            raise ContextlensError(f"{over}; shorten it or pass truncate=True")
        head = tail = 0  # special tokens ([CLS] … [SEP], <s>) stay on both sides of the cut
        while head < n and e.special[head]:
            head += 1
        while tail < n - head and e.special[n - 1 - tail]:
            tail += 1
        room = limit - head - tail
        if keep == "last":
            kept = [*range(head), *range(n - tail - room, n)]
        else:
            kept = [*range(head + room), *range(n - tail, n)]
        warnings.warn(Truncated(f"{over}; used the {keep} {limit}"), stacklevel=2)
        return Encoded(*([getattr(e, f)[i] for i in kept] for f in Encoded.__dataclass_fields__))

    # ── the forward pass ────────────────────────────────────────────────────────────────────
    @staticmethod
    def _batch(encoded: list[Encoded]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad to the longest: (ids [b, s], pad_mask [b, s] True for real tokens), on the
        CPU (the model moves them to its device)."""
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
        embedding_parts: bool = False,
        layers: Sequence[int] | None = None,
        truncate: bool = False,
    ) -> Trace | list[Trace]:
        """Run the model and keep the intermediates asked for (see `Trace` for shapes; the
        tensors have the model's dtype and live on its device).

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
        encoded = self._encode(items, single, truncate)
        ids, mask = self._batch(encoded)
        rec = Recorder(
            hidden_states, attentions, qkv, embedding_parts, frozenset(layers) if layers else None
        )
        self.model(ids, mask, record=rec)

        def stacked(kind: str, b: int, n: int) -> torch.Tensor | None:
            """Item b's slice (its n real tokens) of the recorder's stacked tensor: a view."""
            t = rec.saved.get(kind)
            if t is None:
                return None
            if kind == "hidden_states":  # [layers, b, s, d]
                return t[:, b, :n]
            if kind == "attentions":  # [layers, b, h, s, s]
                return t[:, b, :, :n, :n]
            return t[:, :, b, :, :n]  # qkv: [layers, 3, b, h, s, hd]

        def parts(b: int, n: int) -> EmbeddingParts | None:
            """Item b's embedding parts (its n real tokens), each `[n, d]`."""
            if not embedding_parts:
                return None
            saved = rec.saved.items()
            return EmbeddingParts(
                **{k.removeprefix("embedding."): v[b, :n] for k, v in saved if "." in k}
            )

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
                embedding_parts=parts(b, len(e.ids)),
                layers=layers,
                model=self.name,
            )
            for b, (t, e) in enumerate(zip(items, encoded, strict=True))
        ]
        return traces[0] if single else traces

    # ── sentence embeddings ─────────────────────────────────────────────────────────────────
    @torch.inference_mode()
    def embed(self, texts: Texts, batch_size: int = 32, truncate: bool = False) -> torch.Tensor:
        """One vector per text with the model's own pooling: `[n, d_model]` (`[d_model]` for one),
        float32 on the model's device (pooled in float32 whatever the model's dtype).

        Texts are sorted by length and run in padded batches of `batch_size`, side by side on
        the CPU (`side_by_side`).
        """
        if batch_size < 1:
            raise ContextlensError(f"batch_size must be ≥ 1 (got {batch_size})")
        items, single = _as_list(texts)
        encoded = self._encode(items, single, truncate, self.pooling.max_length)
        order = sorted(range(len(items)), key=lambda i: len(encoded[i].ids))
        out = torch.empty(len(items), self.config.d_model, device=self.device)

        def run(chunk: list[int]) -> None:
            ids, mask = self._batch([encoded[i] for i in chunk])
            out[chunk] = self.pool(self.model(ids, mask), mask)

        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        side_by_side(run, batches, self.device)
        return out[0] if single else out

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """hidden [b, s, d], mask [b, s] -> [b, d] float32 by the model's pooling."""
        hidden = hidden.float()
        mask = mask.to(hidden.device)
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

    # ── next-token prediction and generation (decoders) ────────────────────────────────────
    def require_decoder(self, what: str) -> None:
        if self.kind != "decoder" or self.model.lm_head is None:
            kind = "an encoder" if self.kind == "encoder" else "a decoder without an LM head"
            raise ContextlensError(
                f"{self.name} is {kind}; {what} needs a decoder with an LM head, such as "
                "smollm2 (-m smollm2)"
            )

    @torch.inference_mode()
    def next_token_logits(self, texts: Texts, truncate: bool = False) -> torch.Tensor:
        """The LM head's logits for the token after each text: `[vocab]` (`[n, vocab]` for a list),
        float32 on the model's device.

        A list runs as one right-padded batch: causal attention never looks at the padding,
        so each row is read at its own last real token. truncate=True keeps the last tokens of
        a text over the model's context (with a `Truncated` warning).
        """
        self.require_decoder("next-token prediction")
        items, single = _as_list(texts)
        ids, mask = self._batch(self._encode(items, single, truncate, keep="last"))
        hidden = self.model(ids, mask)  # [b, s, d]
        last = hidden[torch.arange(len(items)), mask.sum(1) - 1]  # [b, d]
        logits = self.model.logits(last).float()  # [b, vocab]
        return logits[0] if single else logits

    def next_token_probs(
        self, texts: Texts, k: int = 10, temperature: float = 1.0, truncate: bool = False
    ) -> list[tuple[str, float]] | list[list[tuple[str, float]]]:
        """The k most likely next tokens as (decoded text, probability), most likely first."""
        if k < 1:
            raise ContextlensError(f"k must be ≥ 1 (got {k})")
        check_temperature(temperature)
        logits = self.next_token_logits(texts, truncate)
        probs = (logits.reshape(-1, logits.shape[-1]) / temperature).softmax(-1)
        top = probs.topk(min(k, probs.shape[-1]))
        out = [
            [(self.tokenizer.decode([int(i)]), float(p)) for p, i in zip(ps, ix, strict=True)]
            for ps, ix in zip(top.values, top.indices, strict=True)
        ]
        return out[0] if isinstance(texts, str) else out

    @torch.inference_mode()
    def generate_ids(
        self,
        ids: list[int],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        use_cache: bool = True,
        stop_at_eos: bool = True,
    ):
        """Yield new token ids one by one after the prompt `ids`: prefill once, then one token
        per step through the KV cache (use_cache=False recomputes the whole sequence each step).
        An end-of-sequence id is yielded and ends generation unless stop_at_eos=False.
        Tokens are chosen from float32 logits on the CPU, so a seed draws the same tokens on
        any device."""
        self.require_decoder("generation")
        self.check_new_tokens(max_new_tokens)
        check_sampling(temperature, top_k, top_p, seed)
        limit = self.max_length
        if len(ids) + max_new_tokens > limit:
            raise ContextlensError(
                f"prompt ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) exceeds "
                f"{self.name}'s context of {limit} tokens; shorten the prompt, ask for fewer "
                "new tokens or pass truncate=True"
            )
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        cache = self.model.new_cache(1, len(ids) + max_new_tokens) if use_cache else None
        seq = list(ids)
        step = torch.tensor([seq])
        for _ in range(max_new_tokens):
            hidden = self.model(step, cache=cache)  # [1, s, d]
            logits = self.model.logits(hidden[0, -1]).float().cpu()  # [vocab]
            token = choose(logits, temperature, top_k, top_p, generator)
            yield token
            if stop_at_eos and token in self.tokenizer.eos_ids:
                return
            seq.append(token)
            step = torch.tensor([[token]] if use_cache else [seq])

    def check_new_tokens(self, max_new_tokens: int) -> None:
        """max_new_tokens must be ≥ 1 and leave room for a prompt in the model's context."""
        if not 1 <= max_new_tokens < self.max_length:
            raise ContextlensError(
                f"max_new_tokens must be ≥ 1 and below {self.name}'s context of "
                f"{self.max_length} tokens (got {max_new_tokens})"
            )

    @torch.inference_mode()
    def stream(
        self,
        text: str,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        truncate: bool = False,
    ):
        """Yield the new text piece by piece as it is generated (see `generate`)."""
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        self.require_decoder("generation")
        self.check_new_tokens(max_new_tokens)
        if truncate:
            room = self.max_length - max_new_tokens
            why = f" ({self.max_length} less {max_new_tokens} new tokens)"
            e = self.tokenize(text, True, limit=room, keep="last", why=why)
        else:
            e = self.tokenize(text)
        new: list[int] = []
        shown = ""
        for token in self.generate_ids(e.ids, max_new_tokens, temperature, top_k, top_p, seed):
            if token in self.tokenizer.eos_ids:
                break
            new.append(token)
            full = self.tokenizer.decode(new, skip_special_tokens=True)
            if full.endswith("\ufffd"):
                continue  # half of a multi-byte character: wait for the rest
            cut = min((full.find(s) for s in stops if s in full), default=-1)
            if cut >= 0:
                if cut > len(shown):
                    yield full[len(shown) : cut]
                return
            if len(full) > len(shown):
                yield full[len(shown) :]
                shown = full

    def generate(self, text: str, max_new_tokens: int = 64, **kwargs) -> str:
        """The new text only (not the prompt). temperature=0 (the default) is greedy decoding;
        top_k / top_p filter the distribution, seed makes sampling repeatable, and generation
        ends at an end-of-sequence token, after max_new_tokens, or before a `stop` string.
        truncate=True keeps the last tokens of a prompt that leaves no room for max_new_tokens
        (with a `Truncated` warning) instead of raising."""
        return "".join(self.stream(text, max_new_tokens, **kwargs))

    def chat_prompt(self, messages: str | Sequence[dict]) -> str:
        """The model's own chat template applied to messages ([{"role", "content"}, …])."""
        self.require_decoder("chat")
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if not messages or not all(isinstance(m, dict) and "content" in m for m in messages):
            raise ContextlensError('messages must be a list of {"role": …, "content": …} dicts')
        template = self.tokenizer.chat_template
        if not template:
            raise ContextlensError(f"{self.name} has no chat template; use generate() instead")
        return render_chat(template, list(messages), self.tokenizer)

    def chat(self, messages: str | Sequence[dict], **kwargs) -> str:
        """The assistant's reply to `messages` (a string is one user message)."""
        return self.generate(self.chat_prompt(messages), **kwargs)
