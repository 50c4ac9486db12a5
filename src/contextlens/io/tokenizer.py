"""Text -> tokens with the `tokenizers` library, keeping what the rest of contextlens needs:
ids, token strings, character offsets into the text, and which tokens are special.

Also the pieces that rebuild a tokenizer from a bare vocabulary (as GGUF files store it): the
pre-tokenizer regexes of Llama 3 and Qwen2, and SentencePiece BPE from tokens and scores."""

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from ..errors import ContextlensError


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]  # character span of each token in the text ((0, 0) if special)
    special: list[bool]


class Tokenizer:
    def __init__(
        self,
        tok: HFTokenizer,
        add_special_tokens: bool = True,
        bos_id: int | None = None,
        eos_ids: tuple[int, ...] = (),
        chat_template: str | None = None,
    ):
        tok.no_truncation()  # limits are checked (and named) by the model, never applied silently
        tok.no_padding()
        self.tok = tok
        self.add_special_tokens = add_special_tokens
        self.bos_id = bos_id
        self.eos_ids = eos_ids  # generation stops at any of these
        self.chat_template = chat_template  # a Jinja template, as in tokenizer_config.json
        # special tokens written in the text (e.g. <|im_start|>) count as special too
        self.special_ids = {i for i, t in tok.get_added_tokens_decoder().items() if t.special}

    @classmethod
    def from_file(cls, path: Path, **kwargs) -> "Tokenizer":
        if not path.is_file():
            raise ContextlensError(f"{path} is missing; a model directory needs its tokenizer.json")
        try:
            tok = HFTokenizer.from_file(str(path))
        except Exception as e:  # the tokenizers library raises a bare Exception on bad files
            raise ContextlensError(f"{path} is not a valid tokenizer file ({e})") from None
        _check_unknown_token(tok, path)
        return cls(tok, **kwargs)

    def check_fits(self, rows: int, source: str) -> None:
        """Every id this tokenizer gives is a row of the model's embedding `[rows, d]`, and the
        BOS/EOS ids are tokens of its vocabulary; else one clear error."""
        top = max(self.tok.get_vocab(with_added_tokens=True).values(), default=-1)
        if top >= rows:
            raise ContextlensError(
                f"{source}: the tokenizer gives ids up to {top} but the model's embedding has "
                f"{rows} rows (vocab_size); the tokenizer does not belong to this model"
            )
        for name, ids in (("BOS", (self.bos_id,)), ("EOS", self.eos_ids)):
            for i in ids:
                if i is not None and not self._is_token(i, top):
                    raise ContextlensError(
                        f"{source}: the {name} token id {i!r} is not a token of the tokenizer "
                        f"(ids 0..{top}); fix bos_token_id / eos_token_id in config.json"
                    )

    def _is_token(self, i, top: int) -> bool:
        in_range = isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= top
        return in_range and self.tok.id_to_token(i) is not None

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, texts: list[str]) -> list[Encoded]:
        encs = self.tok.encode_batch(texts, add_special_tokens=self.add_special_tokens)
        return [
            Encoded(
                ids=list(e.ids),
                tokens=list(e.tokens),
                offsets=[tuple(o) for o in e.offsets],
                special=[
                    bool(m) or i in self.special_ids
                    for m, i in zip(e.special_tokens_mask, e.ids, strict=True)
                ],
            )
            for e in encs
        ]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self.tok.decode(ids, skip_special_tokens=skip_special_tokens)


def _check_unknown_token(tok: HFTokenizer, path: Path) -> None:
    """WordPiece and BPE put their unknown-token stand-in (e.g. [UNK]) where a piece of text is
    not in the vocabulary: it must be in the vocabulary itself, or such text fails later."""
    unk = getattr(tok.model, "unk_token", None)
    if unk is not None and tok.token_to_id(unk) is None:
        raise ContextlensError(
            f"{path}: the unknown-token stand-in {unk!r} is not in the vocabulary; restore the "
            "file (words outside the vocabulary could not be tokenized)"
        )


# ---- tokenizers rebuilt from a vocabulary ----------------------------------------------------


def split_regex(digits: str) -> str:
    """The pre-tokenizer regex of Llama 3 (digits "{1,3}": up to three at a time) and Qwen2
    (digits "": one at a time), as llama.cpp's llama-vocab.cpp spells them: English
    contractions, letters with one leading non-letter, digits, punctuation runs with their line
    breaks, line breaks, then other whitespace."""
    contractions = "|".join(
        "'" + "".join(f"[{c.lower()}{c.upper()}]" for c in ending)
        for ending in ("s", "t", "re", "ve", "m", "ll", "d")
    )
    return (
        rf"(?:{contractions})|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+|\p{{N}}{digits}"
        r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    )


def regex_then_bytes(regex: str) -> pre_tokenizers.PreTokenizer:
    """Split text by `regex` (each match a piece), then spell the pieces in GPT-2's byte
    alphabet."""
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def merges_from_scores(tokens: list[str], scores: list[float]) -> list[tuple[str, str]]:
    """SentencePiece BPE's merges, which a GGUF file does not store: a token that is two tokens
    joined is their merge, and higher-scoring tokens merge first — llama.cpp's rule, which joins
    the adjacent pair whose join scores highest. Ties go by the pair's ids."""
    ids = {t: i for i, t in enumerate(tokens)}
    found = [
        (-score, ids[t[:cut]], ids[t[cut:]])
        for t, score in zip(tokens, scores, strict=True)
        for cut in range(1, len(t))
        if t[:cut] in ids and t[cut:] in ids
    ]
    found.sort()
    return [(tokens[a], tokens[b]) for _, a, b in found]


SPACE = "\u2581"  # ▁: how SentencePiece writes a space inside tokens


def sentencepiece_bpe(
    tokens: list[str], scores: list[float], unk: str | None, add_space_prefix: bool
) -> HFTokenizer:
    """SentencePiece BPE as llama.cpp runs it: spaces written ▁ (and one put in front of the
    text, and after each special token, if `add_space_prefix`), the whole text merged by
    `merges_from_scores`, and a character outside the vocabulary spelled as its UTF-8 bytes
    (<0xE4> …)."""
    vocab = dict(zip(tokens, range(len(tokens)), strict=True))
    merges = merges_from_scores(tokens, scores)
    tok = HFTokenizer(models.BPE(vocab, merges, unk_token=unk, byte_fallback=True))
    spaces = [normalizers.Replace(" ", SPACE)]
    tok.normalizer = normalizers.Sequence(
        [normalizers.Prepend(SPACE), *spaces] if add_space_prefix else spaces
    )
    strip = [decoders.Strip(" ", 1, 0)] if add_space_prefix else []
    tok.decoder = decoders.Sequence(
        [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse(), *strip]
    )
    return tok
