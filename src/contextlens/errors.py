"""The one exception type users see (a single sentence naming the problem and the fix), the
notes (a result is usable but not quite what was asked: a text was cut to fit), and how
data-file readers open their files."""

from pathlib import Path


class ContextlensError(ValueError):
    """Bad input or a missing/corrupt file. The CLI prints the message alone and exits with 2."""


class Note(UserWarning):
    """Something to know about a result that is still given. The CLI prints the message as one
    `note: …` line."""


class Truncated(Note):
    """A text was longer than the model takes and was cut (only where truncate=True asked)."""


def regular_file(path: str | Path, what: str) -> Path:
    """`path` if it is a regular file; else one clear error. A FIFO or device is refused before
    it is opened (reading one would block). `what` names the expected file, e.g. "a WiC file"."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        problem = "does not exist"
    elif path.is_dir():
        problem = "is a folder"
    else:
        problem = "is not a regular file (a FIFO, socket or device)"
    raise ContextlensError(f"{path} {problem}; give {what}")


def read_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of the regular file `path`, or one clear error naming `what` it should be."""
    path = regular_file(path, what)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ContextlensError(f"{path} is not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise ContextlensError(f"{path} cannot be read ({e.strerror})") from None
