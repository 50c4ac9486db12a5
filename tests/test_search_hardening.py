"""Search and retrieval under bad input: a failed first build leaves the folder exactly as it
was, and every other failure is one line (exit 2)."""

import hashlib
import sqlite3
from pathlib import Path

import pytest

import contextlens.search.index as index_module
from contextlens.cli import search as search_cli
from contextlens.search import Index

SENTENCES = [f"Note {i} says that the {w} is kept in drawer {i}." for i, w in enumerate(
    ["stapler", "kettle", "passport", "torch", "charger", "ladder", "umbrella"] * 10
)]  # fmt: skip


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder`, with a hash of each file's bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "/"
        for p in sorted(folder.rglob("*"))
    }


def user_folder(path: Path) -> Path:
    """A folder of someone's files, some named like an index's own."""
    path.mkdir()
    (path / "report.pdf").write_bytes(bytes(range(256)) * 20)
    (path / "keep.csv").write_text("a,b\n1,2\n")
    (path / "write.lock").write_text("mine")
    (path / "results-0.npy").write_bytes(b"not ours")
    (path / "sub").mkdir()
    (path / "sub" / "deep.bin").write_bytes(b"\0\1")
    return path


def notes(path: Path, n: int) -> Path:
    path.mkdir()
    for i in range(n):
        (path / f"note{i:02d}.txt").write_text(SENTENCES[i])
    return path


class Failing:
    """minilm, except that `embed` raises `error` on its call number `on` (1-based)."""

    def __init__(self, model, error: BaseException, on: int):
        self.model, self.error, self.on, self.calls = model, error, on, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def embed(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.on:
            raise self.error
        return self.model.embed(*args, **kwargs)


def no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")


# (what fails, extra CLI arguments, the outcome: a one-line error's text, an exit code or what
# is raised)
FIRST_BUILD_FAILURES = {
    "binary file only": ([], "no readable documents"),
    "no documents": ([], "no readable documents"),
    "missing source": ([], "does not exist"),
    "not an encoder": (["-m", "glove-50"], "not a sentence encoder"),
    "unknown model": (["-m", "no-such-model"], "no-such-model"),
    "chunk too small": (["--chunk-tokens", "5"], "chunk"),
    "error mid-embedding": ([], RuntimeError),
    "ctrl-c mid-embedding": ([], 130),  # click prints "Aborted!" and exits 128 + SIGINT
    "disk full at the snapshot": ([], OSError),
}


@pytest.mark.parametrize("folder", ["existing folder with other files", "new nested folder"])
@pytest.mark.parametrize("failure", FIRST_BUILD_FAILURES)
def test_failed_first_build_leaves_the_folder_as_it_was(
    run_cli, minilm, monkeypatch, tmp_path, folder, failure
):
    args, raised = FIRST_BUILD_FAILURES[failure]
    if folder == "new nested folder":
        index = tmp_path / "new" / "nested" / "ix"
    else:
        index = user_folder(tmp_path / "ix")
    source = tmp_path / "src"
    if failure == "binary file only":
        source.mkdir()
        (source / "scan.txt").write_bytes(b"\x89PNG\r\n\x1a\n\0\0")
    elif failure == "no documents":
        source.mkdir()
    elif failure != "missing source":
        notes(source, 70)  # more than one commit of 64 chunks
    if failure in ("error mid-embedding", "ctrl-c mid-embedding"):
        error = RuntimeError("boom") if raised is RuntimeError else KeyboardInterrupt()
        monkeypatch.setattr(search_cli, "get_model", lambda name: Failing(minilm, error, on=2))
    if failure == "disk full at the snapshot":
        monkeypatch.setattr(index_module, "save_snapshot", no_space)
    before = snapshot(tmp_path)

    command = ["index", "build", source, "--index", index, *args]
    if isinstance(raised, str):
        code, _, err = run_cli(*command)
        assert code == 2 and err.startswith("error: ") and raised in err, err
        assert len(err.strip().splitlines()) == 1
    elif isinstance(raised, int):
        assert run_cli(*command)[0] == raised
    else:
        with pytest.raises(raised):
            run_cli(*command)
    assert snapshot(tmp_path) == before


def test_building_a_folder_into_itself_keeps_its_files(run_cli, tmp_path):
    """The reported case: SRC and --index the same folder of files that are not documents."""
    folder = user_folder(tmp_path / "d")
    before = snapshot(tmp_path)
    code, _, err = run_cli("index", "build", folder, "--index", folder)
    assert code == 2 and "no readable documents under" in err and "(4 files skipped)" in err
    assert snapshot(tmp_path) == before
    (folder / "todo.md").write_text("Renew the passport before the trip in May.")
    code, out, err = run_cli("index", "build", folder, "--index", folder, "--json")
    assert code == 0, err
    code, out, err = run_cli("index", "build", folder, "--index", folder)  # its own files unread
    assert code == 0 and "index.db" not in out and "vectors-" not in out, out
    assert (folder / "write.lock").read_text() == "mine"


def test_a_failed_rebuild_keeps_the_index(run_cli, minilm, tmp_path):
    source = notes(tmp_path / "src", 3)
    ix = Index.create(tmp_path / "ix", minilm)
    ix.build([source], minilm)
    before = sorted(p.name for p in (tmp_path / "ix").iterdir())
    code, _, err = run_cli("index", "build", tmp_path / "gone", "--index", tmp_path / "ix")
    assert code == 2 and "does not exist" in err
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == before
    assert Index.create(tmp_path / "ix", minilm).discard() is False  # not made by this call
    assert Index.open(tmp_path / "ix").info()["documents"] == 3


@pytest.mark.parametrize("content", ["random bytes", "another program's database"])
def test_a_foreign_index_db_is_refused_untouched(run_cli, minilm, tmp_path, content):
    folder = tmp_path / "d"
    folder.mkdir()
    if content == "random bytes":
        (folder / "index.db").write_bytes(bytes(range(256)) * 8)
    else:
        with sqlite3.connect(folder / "index.db") as db:
            db.execute("CREATE TABLE people(name TEXT)")
        db.close()
    source = notes(tmp_path / "src", 1)
    before = snapshot(tmp_path)
    for args in (["index", "build", source], ["search", "passport"], ["index", "info"]):
        code, _, err = run_cli(*args, "--index", folder)
        assert code == 2 and "is not a usable contextlens index" in err, err
    assert snapshot(tmp_path) == before


def test_an_index_path_that_is_a_file_is_refused(run_cli, tmp_path):
    (tmp_path / "f").write_text("x")
    source = notes(tmp_path / "src", 1)
    code, _, err = run_cli("index", "build", source, "--index", tmp_path / "f")
    assert code == 2 and "is a file; give --index a folder" in err
    assert (tmp_path / "f").read_text() == "x"
