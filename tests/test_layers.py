"""The package's layers hold: no module imports from a layer above its own, and no two modules
import each other, directly or round a loop.

Every `import` counts, at the top of a file or inside a function, absolute or relative: a lazy
import still ties the two modules together.
"""

import ast
from pathlib import Path

import contextlens

ROOT = Path(contextlens.__file__).parent

# The first name under `contextlens` → its layer; a module may import its own layer and below.
LAYERS = {
    "errors": 0,  # the one error type, and vector arithmetic: everything may use them
    "metrics": 0,
    "report": 0,  # reports (dataclasses) as plain JSON data
    "io": 1,  # files: weights, tokenizers, word-vector formats, dataset readers, the catalog
    "nn": 2,  # embedding, positions, attention, norms, recording
    "models": 3,  # architectures built from nn blocks
    "lm": 4,  # a model to look inside, word vectors, a trace, and loading them by name
    "static": 4,
    "word2vec": 4,  # training word vectors; fastText subword vectors
    "trace": 4,
    "loader": 4,
    "sampling": 4,
    "analysis": 5,  # what is computed from models and vectors, returned as plain data
    "search": 5,
    "cli": 6,  # the interfaces: they display analysis results
    "web": 6,
    "": 7,  # `import contextlens`: the Python API gathers everything
}


def module_name(path: Path) -> str:
    parts = ["contextlens", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer(module: str) -> int:
    return LAYERS[module.split(".")[1] if "." in module else ""]


def base(module: str, node: ast.ImportFrom) -> str:
    """The module a `from … import …` names, with its dots resolved against `module`."""
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports(module: str) -> set[str]:
    """The contextlens modules `module` imports: `from p import m` counts as m when m is a
    module, else as p."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            source = base(module, node)
            found |= {
                f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source
                for a in node.names
            }
    return {m for m in found if m in MODULES and m != module}


GRAPH = {m: imports(m) for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    assert {m for m in MODULES if (m.split(".") + [""])[1] not in LAYERS} == set()


def test_no_module_imports_from_a_layer_above_its_own():
    upward = sorted(
        f"{m} imports {target}"
        for m, ts in GRAPH.items()
        for target in ts
        if layer(target) > layer(m)
    )
    assert upward == []


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_the_checks_see_relative_lazy_imports_and_loops():
    assert "contextlens.errors" in GRAPH["contextlens.io.catalog"]  # from ..errors import …
    assert "contextlens.io.gguf" in GRAPH["contextlens.loader"]  # inside load_gguf
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
