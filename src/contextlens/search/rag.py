"""Retrieval-augmented answers: the top chunks become numbered sources in a chat prompt, and a
decoder answers from them, citing sources as [1], [2], …"""

from dataclasses import dataclass

from ..errors import ContextlensError
from ..lm import LanguageModel
from .index import Hit

SYSTEM = (
    "Answer the question using only the numbered sources. Cite the sources you use by number, "
    "like [1]. If the sources do not contain the answer, say that they do not."
)


@dataclass(frozen=True)
class Answer:
    question: str
    hits: list[Hit]
    messages: list[dict]  # the chat sent to the decoder
    prompt: str | None  # the decoder's rendering of `messages` (None without a decoder)
    text: str | None  # the decoder's answer (None without a decoder)


def messages_for(question: str, hits: list[Hit]) -> list[dict]:
    sources = "\n\n".join(f"[{h.rank}] ({h.document}) {h.text}" for h in hits)
    user = f"Sources:\n\n{sources}\n\nQuestion: {question}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def answer(question: str, hits: list[Hit], decoder=None, max_new_tokens: int = 200) -> Answer:
    """The prompt built from `hits`, and the decoder's greedy answer when one is given."""
    messages = messages_for(question, hits)
    if decoder is None:
        return Answer(question, hits, messages, None, None)
    if not isinstance(decoder, LanguageModel) or decoder.kind != "decoder":
        raise ContextlensError(
            f"{decoder.name} cannot write answers; give a decoder such as -m smollm2"
        )
    prompt = decoder.chat_prompt(messages)
    text = decoder.generate(prompt, max_new_tokens=max_new_tokens, temperature=0.0)
    return Answer(question, hits, messages, prompt, text.strip())
