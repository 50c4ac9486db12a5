"""Text -> tokens with the `tokenizers` library, keeping what the rest of contextlens needs:
ids, token strings, character offsets into the text, and which tokens are special."""

from dataclasses import dataclass
from pathlib import Path

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
        return cls(tok, **kwargs)

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

    def token_id(self, token: str) -> int | None:
        return self.tok.token_to_id(token)
