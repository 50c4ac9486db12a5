"""A five-document corpus and a search index of it, for the web tests."""

from pathlib import Path

DOCS = {
    "tennis.txt": "Roger Federer won the final of the tennis tournament in straight sets.",
    "volcano.txt": "The volcano erupted at dawn and ash covered the nearby villages.",
    "bread.txt": "Knead the dough, let it rise for an hour, then bake the bread until golden.",
    "bank.txt": "The central bank raised interest rates to slow down inflation.",
    "river.txt": "They walked along the river bank and watched the ducks on the water.",
}


def build_index(folder: Path, model) -> Path:
    """A small search index of DOCS, made with `model`."""
    from contextlens.search import Index

    docs = folder / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    Index.create(folder / "ix", model).build([docs], model)
    return folder / "ix"
