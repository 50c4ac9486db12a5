"""The HTTP app: a JSON API under /api (documented at /docs and /openapi.json) and the page.

Every error is `{"error": "<one line: what is wrong; how to fix>"}` with a 4xx status: 400
malformed JSON, 404 unknown model or file, 413 text over the size limit, 422 anything else
the request got wrong (empty text, layer or head out of range, a word not in the text).
"""

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from ..errors import ContextlensError
from . import compute, search, wordspace
from .models import NotFound, Registry

STATIC = Path(__file__).with_name("static")


@dataclass(frozen=True)
class Limits:
    """The largest request the server takes: characters per text, tokens per traced text
    (the page's attention views), texts per list, top-k edges per query for long texts."""

    chars: int = 5000
    tokens: int = 512
    texts: int = 16
    edges: int = 8
    dense: int = 64  # up to this many tokens, the head view gets every edge


class TooLarge(ContextlensError):
    """Answered with 413."""


class TextIn(BaseModel):
    model: str = Field(description="a model this server serves (GET /api/models)")
    text: str = Field(description="the text to look at")


class AttentionIn(TextIn):
    layer: int = 0
    head: int | None = Field(None, description="a head, or null for the heads' average")


class StepsIn(TextIn):
    layer: int = 0
    head: int = 0
    query: int = Field(description="the query token's index")


class NextIn(TextIn):
    k: int = Field(12, ge=1, le=100)
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None


class ShiftIn(BaseModel):
    model: str
    word: str
    sentences: list[str]
    k: int = Field(3, ge=1, le=20)


class CorefIn(TextIn):
    pronoun: str = Field(description="the pronoun (a word of the text)")
    candidates: list[str] = Field(description="the words it may refer to (two or more)")


class ProjectIn(TextIn):
    layer: int = 0
    method: str = Field("pca", description="pca, or umap when umap-learn is installed")


class TextsIn(BaseModel):
    model: str
    texts: list[str]


class NeighboursIn(BaseModel):
    model: str = "glove-50"
    word: str
    k: int = Field(10, ge=1, le=100)


class AnalogyIn(BaseModel):
    model: str = "glove-50"
    a: str = Field(description="a is to b …")
    b: str
    c: str = Field(description="… as c is to ?")
    k: int = Field(5, ge=1, le=100)


class SearchIn(BaseModel):
    query: str
    k: int = Field(5, ge=1, le=50)
    mode: str = Field("hybrid", description="dense | bm25 | hybrid")


class WordsIn(BaseModel):
    model: str = "glove-50"
    words: list[str]
    method: str = Field("pca", description="pca, or umap when umap-learn is installed")


def _first_error(exc: RequestValidationError) -> tuple[int, str]:
    """One line from pydantic's list of errors (malformed JSON is 400, the rest 422)."""
    err = exc.errors()[0]
    if err.get("type") == "json_invalid":
        why = err.get("ctx", {}).get("error", "invalid")
        return 400, f"malformed JSON body ({why}); send a JSON object"
    where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
    return 422, f"{where}: {err.get('msg', 'invalid value')}"


def create_app(
    models: list[str],
    limits: Limits | None = None,
    registry: Registry | None = None,
    index: str | None = None,
):
    """The app serving `models` (catalog names or paths; each loaded on first use, once) and,
    if named, one search `index` (its model is served too)."""
    limits = limits or Limits()
    served = search.ServedIndex(index) if index else None
    if served and served.model not in models:
        models = [*models, served.model]
    reg = registry or Registry(models)
    app = FastAPI(
        title="contextlens",
        description="Embeddings and attention of real models, step by step.",
        version="0.1.0",
    )
    app.state.registry = reg
    app.state.limits = limits

    @app.exception_handler(ContextlensError)
    async def _ours(request: Request, exc: ContextlensError):
        status = 404 if isinstance(exc, NotFound) else 413 if isinstance(exc, TooLarge) else 422
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        status, message = _first_error(exc)
        return JSONResponse({"error": message}, status_code=status)

    def check_text(text: str) -> str:
        if len(text) > limits.chars:
            raise TooLarge(
                f"text is {len(text)} characters, over this server's limit of {limits.chars}; "
                "send a shorter text"
            )
        if not text.strip():
            raise ContextlensError("text is empty; give at least one word")
        return text

    def check_texts(texts: list[str]) -> list[str]:
        if not 1 <= len(texts) <= limits.texts:
            raise ContextlensError(f"give 1 to {limits.texts} texts (got {len(texts)})")
        return [check_text(t) for t in texts]

    def traced(name: str, text: str, qkv: bool = False):
        model = reg.language_model(name)
        n = len(model.tokenizer.encode([check_text(text)])[0].ids)
        limit = min(limits.tokens, model.max_length)
        if n > limit:
            raise TooLarge(
                f"text is {n} tokens, over the limit of {limit} for {name} on this server; "
                "send a shorter text"
            )
        return model, reg.trace(name, text, qkv=qkv)

    @app.get("/api/models", summary="The models this server serves")
    def list_models() -> dict:
        return {
            "models": [{"name": n, "kind": reg.kind(n)} for n in reg.names],
            "index": served.summary() if served else None,
            "projections": compute.projections(),
            "limits": limits.__dict__,
        }

    @app.get("/api/models/{name}", summary="A model's shape (loads it)")
    def model_info(name: str) -> dict:
        if reg.kind(name) == "static":
            return wordspace.info(name, reg.get(name))
        return compute.model_info(name, reg.language_model(name))

    @app.post("/api/tokens", summary="Tokens → vectors: ids, embedding rows, positions, input")
    def tokens(req: TextIn) -> dict:
        model, trace = traced(req.model, req.text)
        return compute.token_info(trace) | compute.vectors(model, trace)

    @app.post("/api/attention", summary="Head view of one layer/head, layer × head grid")
    def attention(req: AttentionIn) -> dict:
        model, trace = traced(req.model, req.text)
        k = len(trace) if len(trace) <= limits.dense else limits.edges
        return (
            compute.model_info(req.model, model)
            | compute.token_info(trace)
            | compute.attention(trace, req.layer, req.head, k)
        )

    @app.post("/api/steps", summary="Q·Kᵀ/√d → softmax → weights·V for one query token")
    def steps(req: StepsIn) -> dict:
        model, trace = traced(req.model, req.text, qkv=True)
        return compute.token_info(trace) | compute.steps(
            trace, req.layer, req.head, req.query, model.config.causal
        )

    @app.post("/api/next", summary="Next-token probabilities with temperature / top-k / top-p")
    def next_token(req: NextIn) -> dict:
        model, trace = traced(req.model, req.text)
        return compute.token_info(trace) | compute.next_token(
            model, trace, req.k, req.temperature, req.top_k, req.top_p
        )

    @app.post("/api/shift", summary="A word's vector across sentences, layer by layer")
    def shift(req: ShiftIn) -> dict:
        model = reg.language_model(req.model)
        sentences = check_texts(req.sentences)
        return compute.shift(model, req.word, sentences, req.k)

    @app.post("/api/coref", summary="Which candidate a pronoun attends to, layer by layer")
    def coref(req: CorefIn) -> dict:
        _, trace = traced(req.model, req.text)
        return compute.coref(trace, req.pronoun, req.candidates)

    @app.post("/api/project", summary="A sentence's word vectors at one layer, PCA to 2-D")
    def project(req: ProjectIn) -> dict:
        model, trace = traced(req.model, req.text)
        return compute.projection(model, trace, req.layer, req.method)

    @app.post("/api/embed", summary="Sentence embeddings with the model's pooling")
    def embed(req: TextsIn) -> dict:
        return compute.embeddings(reg.language_model(req.model), check_texts(req.texts))

    @app.post("/api/similarity", summary="Cosine similarity of sentence embeddings")
    def similarity(req: TextsIn) -> dict:
        return compute.similarity(reg.language_model(req.model), check_texts(req.texts))

    @app.post("/api/neighbours", summary="Nearest words in a static word-vector table")
    def neighbours(req: NeighboursIn) -> dict:
        return wordspace.neighbours(wordspace.table(reg, req.model), req.word, req.k)

    @app.post("/api/analogy", summary="a : b :: c : ? in a static word-vector table")
    def analogy(req: AnalogyIn) -> dict:
        return wordspace.analogy(wordspace.table(reg, req.model), req.a, req.b, req.c, req.k)

    @app.post("/api/words2d", summary="Chosen words of a word-vector table, PCA to 2-D")
    def words2d(req: WordsIn) -> dict:
        if not 2 <= len(req.words) <= 200:
            raise ContextlensError(f"give 2 to 200 words (got {len(req.words)})")
        return wordspace.project(wordspace.table(reg, req.model), req.words, req.method)

    @app.post("/api/search", summary="Search the served index; hits with token contributions")
    def search_index(req: SearchIn) -> dict:
        return search.search(served, reg, check_text(req.query), req.k, req.mode)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/static/{path:path}", include_in_schema=False)
    def static(path: str) -> FileResponse:
        return FileResponse(static_file(path))

    return app


def static_file(path: str) -> Path:
    """The file under STATIC that `path` names; anything else (.., absolute, missing) is 404."""
    root = STATIC.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise NotFound(f"no such file: /static/{path}")
    return target
