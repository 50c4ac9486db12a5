"""The learning view's answers: word2vec trained on the text the page sends, with tracked pairs
(the `contextlens train word2vec --track` report), and a static table's neighbours beside a
transformer's (the `contextlens contrast` report). Both are `report.to_dict` of the same
dataclasses the CLI prints."""

import tempfile
from pathlib import Path

from pydantic import Field

from ..analysis.contrast import contrast
from ..analysis.learning import learning
from ..errors import ContextlensError
from ..report import to_dict
from ..word2vec import train_word2vec
from .inputs import MODEL, In

MAX_TRAIN_WORDS = 2_000_000  # corpus words × epochs one request may train on


class LearnIn(In):
    text: str = Field(description="the corpus: plain text, one sentence a line is best")
    track: list[list[str]] = Field(
        description="groups of words whose cosines and neighbours are recorded, e.g. "
        '[["cat", "dog"], ["car", "truck"]]'
    )
    mode: str = Field("skipgram", description="skipgram or cbow")
    dim: int = Field(20, ge=2, le=300, description="numbers per vector")
    window: int = Field(5, ge=1, le=20, description="context words each side")
    min_count: int = Field(2, ge=1, description="leave out words seen fewer times")
    epochs: int = Field(3, ge=1, le=50, description="passes over the text")
    sample: float = Field(1e-3, ge=0, lt=1, description="subsample frequent words (0: off)")
    seed: int = Field(1, description="same seed, same vectors")
    checkpoints: int = Field(10, ge=1, le=50, description="moments recorded")


class ContrastIn(In):
    word: str = Field(description="a word of several meanings, e.g. bank")
    sentences: list[str] = Field(description="two or more sentences that use it")
    model: str = Field(description=MODEL + ": the contextual one")
    static: str = Field(description=MODEL + ": the static word vectors")
    k: int = Field(8, ge=1, le=50, description="neighbours listed for each")
    layer: int | None = Field(None, description="the contextual model's layer (default: last)")
    candidates: int = Field(
        3000, ge=1, le=20_000, description="common words of the static table ranked"
    )


def learn(req: LearnIn) -> dict:
    """Train on the request's text in a temporary file (removed after) and report."""
    if len(req.text.split()) * req.epochs > MAX_TRAIN_WORDS:
        raise ContextlensError(
            f"the text × epochs is over {MAX_TRAIN_WORDS:,} words, more than one request "
            "trains on; send less text or fewer epochs (or use contextlens train word2vec)"
        )
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "corpus.txt"
        corpus.write_text(req.text, encoding="utf-8")
        options = req.model_dump(exclude={"text", "track", "checkpoints"})
        run = train_word2vec(corpus, track=req.track, checkpoints=req.checkpoints, **options)
    return to_dict(learning(run))


def side_by_side(req: ContrastIn, wv, model) -> dict:
    return to_dict(contrast(req.word, req.sentences, wv, model, req.k, req.layer, req.candidates))
