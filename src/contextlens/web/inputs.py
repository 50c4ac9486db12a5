"""The JSON bodies the API takes. Every text in them must be valid Unicode: JSON can spell a
lone surrogate ("\\ud800"), which no tokenizer or UTF-8 answer can carry, so it is refused."""

from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from ..analysis.context import PROJECTIONS
from ..search import DEFAULT_MODE

TEMPERATURE = (0.0, 100.0)  # the valid range; 0 means greedy


def _lone_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


class In(BaseModel):
    @field_validator("*")
    @classmethod
    def _valid_unicode(cls, value):
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and _lone_surrogate(t) for t in texts):
            raise PydanticCustomError(
                "unicode",
                "contains a lone surrogate (such as \\ud800), which is not a character; send "
                "valid Unicode text",
            )
        return value


MODEL = "a model this server serves (GET /api/models)"


class TextIn(In):
    model: str = Field(description=MODEL)
    text: str = Field(description="the text to look at")


class AttentionIn(TextIn):
    layer: int = Field(0, description="the layer, from 0")
    head: int | None = Field(None, description="a head (from 0), or null for the heads' average")


class StepsIn(AttentionIn):
    query: int = Field(description="the query token's index")


class NextIn(TextIn):
    k: int = Field(12, ge=1, le=100, description="how many candidates to answer at most")
    temperature: float = Field(
        1.0, description="{:g} to {:g}; 0 = greedy, 1 = the model's own".format(*TEMPERATURE)
    )
    top_k: int | None = Field(None, description="keep only the k most likely tokens")
    top_p: float | None = Field(None, description="keep the most likely tokens up to this mass")


class ShiftIn(In):
    model: str = Field(description=MODEL)
    word: str = Field(description="the word to follow (a word of every sentence)")
    sentences: list[str] = Field(description="two or more; the first is the reference")
    occurrence: int | None = Field(
        None, description="which occurrence (1, 2, …) of the word, when a sentence repeats it"
    )
    k: int = Field(3, ge=1, le=20, description="nearest vocabulary words per layer")


class CorefIn(TextIn):
    pronoun: str | None = Field(None, description="the pronoun; null: the text's first one")
    occurrence: int | None = Field(
        None, description="which occurrence (1, 2, …) of the pronoun, when the text repeats it"
    )
    candidates: list[str] | None = Field(
        None, description="the words it may refer to (two or more); null: proposed from the text"
    )


class ProjectIn(TextIn):
    layer: int = Field(0, description="0 = the input embeddings, 1.. the layers' outputs")
    method: str = Field("pca", description=" | ".join(PROJECTIONS))


class TextsIn(In):
    model: str = Field(description=MODEL)
    texts: list[str] = Field(description="one or more (limits: GET /api/models)")


class NeighboursIn(In):
    model: str = Field("glove-50", description="a word-vector table this server serves")
    word: str = Field(description="a word of the table (Paris falls back to paris)")
    k: int = Field(10, ge=1, le=100)


class AnalogyIn(In):
    model: str = "glove-50"
    a: str = Field(description="a is to b …")
    b: str
    c: str = Field(description="… as c is to ?")
    k: int = Field(5, ge=1, le=100)
    method: str = Field("3cosadd", description="3cosadd (b − a + c) or 3cosmul")


class SearchIn(In):
    query: str
    k: int = Field(5, ge=1, le=50)
    mode: str = Field(DEFAULT_MODE, description="dense | bm25 | hybrid")


class WordsIn(In):
    model: str = "glove-50"
    words: list[str]
    method: str = Field("pca", description=" | ".join(PROJECTIONS))
