"""The HTTP app: a JSON API under /api (its reference at /docs, its schema at /openapi.json) and
the page. Every error is one line of JSON, `{"error": "…"}` (see errors.py); the Guard in front
checks the Host header and the body size before the app reads a byte of the body.
"""

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from pydantic import Field

from ..analysis import attention as att
from ..analysis import attribution, decoding, kvcache, patching
from ..analysis import context as ctx
from ..analysis import embedding as emb
from ..analysis import lens as causal_lens
from ..analysis import wordspace as space
from ..analysis.coref import coref_report
from ..analysis.embedding import CatalogModel
from ..errors import ContextlensError
from ..report import to_dict
from ..search.index import IndexSummary
from . import apidoc, errors, learning, search, wordspace
from .errors import TooLarge
from .guard import Guard
from .inputs import (
    TEMPERATURE,
    AnalogyIn,
    AttentionIn,
    CorefIn,
    In,
    NeighboursIn,
    NextIn,
    ProjectIn,
    SearchIn,
    ShiftIn,
    StepsIn,
    TextIn,
    TextsIn,
    WordsIn,
)
from .models import NotFound, Registry

STATIC = Path(__file__).with_name("static")


@dataclass(frozen=True)
class Limits:
    """The largest request the server takes: characters per text, tokens per traced text
    (the page's attention views), texts per list, top-k edges per query for long texts, and
    bytes per request body."""

    chars: int = 5000
    tokens: int = 512
    texts: int = 16
    edges: int = 8
    dense: int = 64  # up to this many tokens, the head view gets every edge
    body: int = 1 << 20  # 16 texts of 5000 characters fit even \u-escaped


@dataclass(frozen=True)
class Served:
    """What a server serves: its models (as `contextlens models` lists them), its search index,
    the 2-D projections it can draw, and its limits."""

    models: list[CatalogModel]
    index: IndexSummary | None
    projections: list[str]
    limits: Limits


@dataclass(frozen=True)
class CacheView:
    """The KV cache of a served model beside the named configurations' (llama-3-8b, …), and
    the latent-attention demo on a text when one was given."""

    reports: list[kvcache.KVCacheReport]
    demo: kvcache.LatentDemo | None


def create_app(
    models: list[str],
    limits: Limits | None = None,
    registry: Registry | None = None,
    index: str | None = None,
    host: str = "127.0.0.1",
):
    """The app serving `models` (catalog names or paths; each loaded on first use, once) and,
    if named, one search `index` (its model is served too), to requests whose Host header
    names `host`, the address the server is bound to (see guard.Guard)."""
    limits = limits or Limits()
    served = search.ServedIndex(index) if index else None
    if served and served.model not in models:
        models = [*models, served.model]
    reg = registry or Registry(models)
    app = FastAPI(
        title="contextlens",
        description="Embeddings and attention of real models, step by step.",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
    )
    app.state.registry = reg
    app.state.limits = limits
    errors.install(app)
    app.add_middleware(Guard, max_body=limits.body, host=host)

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

    def checked(name: str, text: str):
        """The model `name`, once `text` is known to fit this server's token limit."""
        model = reg.language_model(name)
        n = len(model.tokenizer.encode([check_text(text)])[0].ids)
        limit = min(limits.tokens, model.max_length)
        if n > limit:
            raise TooLarge(
                f"text is {n} tokens, over the limit of {limit} for {name} on this server; "
                "send a shorter text"
            )
        return model

    def traced(name: str, text: str, qkv: bool = False):
        return checked(name, text), reg.trace(name, text, qkv=qkv)

    @app.get("/api/models", summary="The models this server serves")
    def list_models() -> dict:
        summary = served.summary() if served else None
        return to_dict(Served(reg.described(), summary, list(ctx.PROJECTIONS), limits))

    @app.get("/api/models/{name}", summary="A model's shape (loads it)")
    def model_info(name: str) -> dict:
        if reg.kind(name) == "static":
            return to_dict(space.table_info(wordspace.table(reg, name)))
        return to_dict(emb.model_info(name, reg.language_model(name)))

    @app.post("/api/tokens", summary="Tokens → vectors: ids, embedding rows, positions, input")
    def tokens(req: TextIn) -> dict:
        model, trace = traced(req.model, req.text)
        return to_dict(emb.token_vectors(model, trace))

    @app.post("/api/attention", summary="Head view of one layer/head, layer × head grid")
    def attention(req: AttentionIn) -> dict:
        _, trace = traced(req.model, req.text)
        k = len(trace) if len(trace) <= limits.dense else limits.edges
        return to_dict(att.head_view(trace, req.layer, req.head, k))

    @app.post(
        "/api/steps", summary="Q·Kᵀ/√d → softmax → weights·V for one query token (head or all)"
    )
    def steps(req: StepsIn) -> dict:
        model, trace = traced(req.model, req.text, qkv=True)
        return to_dict(att.steps(trace, req.layer, req.head, req.query, model.config.causal))

    @app.post("/api/next", summary="Next-token probabilities with temperature / top-k / top-p")
    def next_token(req: NextIn) -> dict:
        model, trace = traced(req.model, req.text)
        check_decoder(model)
        check_temperature(req.temperature)
        r = decoding.next_tokens(model, req.text, req.k, req.temperature, req.top_k, req.top_p)
        return to_dict(decoding.next_view(trace, r))

    @app.post("/api/shift", summary="A word's vector across sentences, layer by layer")
    def shift(req: ShiftIn) -> dict:
        model = reg.language_model(req.model)
        sentences = check_texts(req.sentences)
        occ = ctx.occurrences(model, req.word, sentences, req.occurrence)
        return to_dict(ctx.shift(model, occ, req.k))

    @app.post("/api/coref", summary="Which candidate a pronoun attends to, layer by layer")
    def coref(req: CorefIn) -> dict:
        _, trace = traced(req.model, req.text)
        return to_dict(coref_report(trace, req.pronoun, req.candidates, req.occurrence))

    @app.post("/api/project", summary="A sentence's word vectors at one layer, in 2-D")
    def project(req: ProjectIn) -> dict:
        _, trace = traced(req.model, req.text)
        return to_dict(ctx.sentence_map(trace, req.layer, req.method))

    @app.post("/api/embed", summary="Sentence embeddings with the model's pooling")
    def embed(req: TextsIn) -> dict:
        return to_dict(emb.embeddings(reg.language_model(req.model), check_texts(req.texts)))

    @app.post("/api/similarity", summary="Cosine similarity of sentence embeddings")
    def similarity(req: TextsIn) -> dict:
        model = reg.language_model(req.model)
        return to_dict(emb.text_similarity(model, check_texts(req.texts)))

    @app.post("/api/neighbours", summary="Nearest words in a static word-vector table")
    def neighbours(req: NeighboursIn) -> dict:
        return to_dict(space.neighbours(wordspace.table(reg, req.model), req.word, req.k))

    @app.post("/api/analogy", summary="a : b :: c : ? in a static word-vector table")
    def analogy(req: AnalogyIn) -> dict:
        wv = wordspace.table(reg, req.model)
        return to_dict(space.analogy(wv, req.a, req.b, req.c, req.k, req.method))

    @app.post("/api/words2d", summary="Chosen words of a word-vector table, in 2-D")
    def words2d(req: WordsIn) -> dict:
        if not 2 <= len(req.words) <= 200:
            raise ContextlensError(f"give 2 to 200 words (got {len(req.words)})")
        return to_dict(space.word_map(wordspace.table(reg, req.model), req.words, req.method))

    @app.post("/api/search", summary="Search the served index; hits with token contributions")
    def search_index(req: SearchIn) -> dict:
        return to_dict(search.search(served, reg, check_text(req.query), req.k, req.mode))

    learning_routes(app, reg, check_texts)
    why_routes(app, reg, check_text)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(apidoc.page(app.openapi()))

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/static/{path:path}", include_in_schema=False)
    def static(path: str) -> FileResponse:
        return FileResponse(static_file(path))

    @app.get("/api/kv-cache", summary="KV-cache bytes for MHA/GQA/MQA/MLA; MLA vs GQA on a text")
    def kv_cache(model: str, text: str | None = None, dtype: str | None = None) -> dict:
        lm = reg.language_model(model)
        reports = [kvcache.report(kvcache.of_model(lm, dtype))]
        reports += [kvcache.report(kvcache.load_config(n, dtype)) for n in kvcache.NAMED]
        demo = None
        if text is not None and lm.kind == "decoder" and lm.config.latent is None:
            demo = kvcache.latent_demo(checked(model, text), text)
        return to_dict(CacheView(reports, demo))

    return app


def check_decoder(model) -> None:
    if model.kind != "decoder" or model.model.lm_head is None:
        kind = "an encoder" if model.kind == "encoder" else "a decoder without an LM head"
        raise ContextlensError(
            f"{model.name} is {kind}; next-token prediction needs a decoder with an LM head: "
            "set model to one (GET /api/models lists them)"
        )


def check_temperature(temperature: float) -> None:
    lo, hi = TEMPERATURE
    if not lo <= temperature <= hi:
        raise ContextlensError(
            f"temperature must be between {lo:g} and {hi:g} (got {temperature}); 0 is greedy "
            "(the most likely token only), 1 the model's own distribution"
        )


def static_file(path: str) -> Path:
    """The file under STATIC that `path` names; anything else (.., absolute, a NUL byte,
    missing) is 404."""
    root = STATIC.resolve()
    try:
        target = (root / path).resolve()
        found = target.is_relative_to(root) and target.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise NotFound(f"no such file under /static/: {path[:200]!r}")
    return target


def learning_routes(app, reg: Registry, check_texts) -> None:
    """Watching embeddings learn (word2vec on the page's text) and static vs contextual."""

    @app.post("/api/learn", summary="Train word2vec on a text and watch tracked words learn")
    def learn(req: learning.LearnIn) -> dict:
        return learning.learn(req)

    @app.post("/api/contrast", summary="A static table's neighbours beside a transformer's")
    def contrast(req: learning.ContrastIn) -> dict:
        check_texts(req.sentences)
        wv = wordspace.table(reg, req.static)
        return learning.side_by_side(req, wv, reg.language_model(req.model))


# ── the "Why" view: logit lens, attributions, patching ─────────────────────────────────────
WHY_TOKENS = 64  # the longest text the Why view takes: gradients and patching run many passes


class LensIn(TextIn):
    k: int = Field(8, ge=1, le=50, description="how many tokens per layer")
    target: str | None = Field(None, description="one token to follow (default: the prediction)")


class AttributeIn(TextIn):
    other: str | None = Field(None, description="attribute the cosine with this text instead")
    score: str = Field("cosine", description="what the cosine is: cosine or search score")
    target: str | None = Field(None, description="one token (default: the prediction)")
    steps: int = Field(attribution.DEFAULT_STEPS, ge=1, le=64, description="IG steps")


class PatchIn(In):
    model: str = Field(description="a model this server serves (GET /api/models)")
    clean: str = Field(description="the clean text")
    corrupted: str = Field(description="the corrupted text, of as many tokens")
    site: str = Field("resid", description="resid | attn | mlp | heads")
    target: str | None = Field(None, description="one token (default: the clean prediction)")
    foil: str | None = Field(None, description="one token (default: the corrupted prediction)")


def why_routes(app, reg: Registry, check_text) -> None:
    """Logit lens, token attributions and patching maps, for texts of up to WHY_TOKENS."""

    def short(name: str, *texts: str):
        model = reg.language_model(name)
        for text in texts:
            n = len(model.tokenizer.encode([check_text(text)])[0].ids)
            if n > WHY_TOKENS:
                raise TooLarge(
                    f"text is {n} tokens, over the Why view's limit of {WHY_TOKENS}; send a "
                    "shorter text"
                )
        return model

    @app.post("/api/lens", summary="The next token read from every layer (logit lens)")
    def lens(req: LensIn) -> dict:
        return to_dict(
            causal_lens.logit_lens(short(req.model, req.text), req.text, req.k, req.target)
        )

    @app.post("/api/attribute", summary="Token attributions of the next token or a cosine")
    def attribute(req: AttributeIn) -> dict:
        if req.other is None:
            m = short(req.model, req.text)
            return to_dict(
                attribution.attribute_next_token(m, req.text, req.target, False, req.steps)
            )
        if req.score not in ("cosine", "search score"):
            raise ContextlensError(f"unknown score {req.score!r}; use cosine or search score")
        m = short(req.model, req.text, req.other)
        return to_dict(
            attribution.attribute_similarity(m, req.text, req.other, req.steps, req.score)
        )

    @app.post("/api/patch", summary="Activation patching: clean into corrupted, per site")
    def patch(req: PatchIn) -> dict:
        m = short(req.model, req.clean, req.corrupted)
        return to_dict(patching.patch(m, req.clean, req.corrupted, req.site, req.target, req.foil))
