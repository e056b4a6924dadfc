"""Output locations, checked before the first step: every file or folder a command will write
(``--out``, ``--record``, ``--checkpoint``, ``--gif``, ``--frames``, ``--video``, ``replay
--gif/--frames``, ``cluster --out/--plot``, ``--size``), with one message shape:

    --gif: out/run.gif: is a folder; give a file name ending in .gif

so that a run never does its work and then fails on where to put it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ScenarioError
from .names import MAX_PIXELS

RECORD_SUFFIXES = (".h5", ".hdf5", ".h5md")
GIF_SUFFIXES = (".gif",)
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm")
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff", ".eps", ".ps", ".webp")
LABEL_SUFFIXES = (".csv", ".txt")


def _fail(flag: str, path, problem: str) -> ScenarioError:
    return ScenarioError(f"{flag}: {path}: {problem}")


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if os.path.lexists(parent):
            return parent
    return Path(".")


def _check_creatable(path: Path, flag: str, shown) -> None:
    """The nearest existing folder above ``path`` is a folder we may write into."""
    above = _nearest_existing(path.parent if str(path.parent) else Path("."))
    if above.is_symlink() and not above.exists():
        raise _fail(flag, shown, f"{above} is a dangling symbolic link; give another location")
    if not above.is_dir():
        raise _fail(flag, shown, f"{above} is a file, not a folder; give a location inside a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        raise _fail(flag, shown, f"permission denied: cannot create files in {above}")


def check_output_file(path: str | os.PathLike, flag: str, suffixes: tuple[str, ...] | None = None) -> Path:
    """``path`` as a ``Path`` when a file can be written there (replacing a regular file is fine).

    Raises:
        ScenarioError: ``flag: path: problem; fix`` for an empty name, a wrong extension, a
        folder, a FIFO or device, an unwritable file, or a parent that is a file or unwritable.
    """
    shown = str(path)
    if not shown.strip():
        raise _fail(flag, repr(shown), "expected a file name")
    p = Path(path)
    ending = f" ending in {' or '.join(suffixes)}" if suffixes else ""
    if suffixes and p.suffix.lower() not in suffixes:
        raise _fail(flag, shown, f"expected a file name{ending}, got the extension {p.suffix or '(none)'!r}")
    if os.path.lexists(p):
        try:
            mode = os.stat(p).st_mode
        except OSError as exc:
            raise _fail(flag, shown, f"cannot use this path ({exc.strerror or exc}); give another file name") from None
        if stat.S_ISDIR(mode):
            raise _fail(flag, shown, f"is a folder; give a file name{ending}")
        if not stat.S_ISREG(mode):
            raise _fail(flag, shown, "is not a regular file (a pipe or device); give a file name")
        if not os.access(p, os.W_OK):
            raise _fail(flag, shown, "permission denied: the file is not writable")
        return p
    _check_creatable(p, flag, shown)
    return p


def check_output_dir(path: str | os.PathLike, flag: str) -> Path:
    """``path`` as a ``Path`` when it is (or can be made) a folder we may write into."""
    shown = str(path)
    if not shown.strip():
        raise _fail(flag, repr(shown), "expected a folder name")
    p = Path(path)
    if os.path.lexists(p):
        if not p.exists():
            raise _fail(flag, shown, "is a dangling symbolic link; give a folder")
        if not p.is_dir():
            raise _fail(flag, shown, "is a file, not a folder; give a folder name")
        if not os.access(p, os.W_OK | os.X_OK):
            raise _fail(flag, shown, "permission denied: cannot write into this folder")
        return p
    _check_creatable(p, flag, shown)
    return p


def check_size(text: str | None, flag: str = "--size") -> tuple[int, int] | None:
    """'640x360' -> (640, 360), each side 16..MAX_PIXELS; None stays None."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ScenarioError(f"{flag}: expected WIDTHxHEIGHT such as 640x360, got {text!r}") from None
    if not (16 <= w <= MAX_PIXELS and 16 <= h <= MAX_PIXELS):
        raise ScenarioError(f"{flag}: expected each side between 16 and {MAX_PIXELS} pixels, got {text!r}")
    return w, h


__all__ = ["GIF_SUFFIXES", "LABEL_SUFFIXES", "PLOT_SUFFIXES", "RECORD_SUFFIXES", "VIDEO_SUFFIXES",
           "check_output_dir", "check_output_file", "check_size"]
