"""Input files: what kind of file a path is, read within a size limit, and numeric arrays.

Every reader of user files (scenario YAML, initial-state ``.npy``/``.csv``, cluster data,
checkpoints, recordings) asks ``file_problem`` first, so a directory, a FIFO, a device, a
dangling or looping link or an unreadable file gets its own accurate message and nothing
blocks on a pipe or reads ``/dev/zero`` forever.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np

from .errors import ScenarioError
from .names import MAX_ABS_VALUE


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


def file_problem(path: str | Path, *, max_bytes: int | None = None) -> str | None:
    """Why ``path`` cannot be read as a regular file, or None when it can.

    Args:
        path: the file.
        max_bytes: the largest size accepted, if any.
    """
    path = Path(path)
    try:
        os.lstat(path)
    except FileNotFoundError:
        return "file not found"
    except NotADirectoryError:
        return "file not found (a part of the path is not a folder)"
    except PermissionError:
        return "permission denied (a folder on the way cannot be searched)"
    except OSError as exc:
        return f"cannot inspect the path ({exc.strerror or exc})"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return f"a dangling symbolic link (to {os.readlink(path)!r}, which does not exist)"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        return f"cannot inspect the path ({exc.strerror or exc})"
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "is a folder, expected a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), expected a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, expected a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, expected a regular file"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if not os.access(path, os.R_OK):
        return "permission denied (the file is not readable)"
    if max_bytes is not None and info.st_size > max_bytes:
        return f"is {_size(info.st_size)}; the limit is {_size(max_bytes)}"
    return None


def read_bytes(path: str | Path, *, max_bytes: int, where: str = "") -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (``/proc`` files, which report size
    0, are read up to the limit too). Raises ``ScenarioError`` naming ``path`` and ``where``."""
    prefix = f"{path}: {where}: " if where else f"{path}: "
    problem = file_problem(path, max_bytes=max_bytes)
    if problem is not None:
        raise ScenarioError(prefix + problem)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ScenarioError(prefix + f"cannot read the file ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise ScenarioError(prefix + f"is larger than the limit of {_size(max_bytes)}")
    return data


# An initial-state table: big enough for millions of agents, small enough to refuse /dev/zero.
MAX_ARRAY_BYTES = 4 * 2**30


class ArrayProblem(ValueError):
    """What is wrong with an initial-state table (the message names no file; callers add it)."""


def load_array(path: Path, *, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """A 2-D float64 array [N, D] from a ``.npy`` or ``.csv`` file (a non-numeric first CSV row
    is a header), checked: a regular file, numbers only (no strings, structured or complex
    dtypes), 2-D, finite, and every value within +-``MAX_ABS_VALUE`` so that it stays finite
    after the cast to the run's ``dtype``.

    Raises:
        ArrayProblem: the first problem found.
    """
    problem = file_problem(path, max_bytes=MAX_ARRAY_BYTES)
    if problem is not None:
        raise ArrayProblem(problem)
    if path.suffix not in (".npy", ".csv"):
        raise ArrayProblem(f"expected a .npy or .csv file, got {path.name!r}")
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            with open(path, encoding="utf-8") as fh:
                first = fh.readline()
            try:
                [float(x) for x in first.strip().split(",")]
                skip = 0
            except ValueError:
                skip = 1
            arr = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as exc:
        raise ArrayProblem(f"cannot read numbers from the file ({str(exc)[:200]})") from None
    if not isinstance(arr, np.ndarray):
        raise ArrayProblem(f"expected one array, got {type(arr).__name__}")
    if arr.dtype.kind not in "biuf":
        raise ArrayProblem(f"expected an array of real numbers, got dtype {arr.dtype}; save a float array "
                           "with numpy.save")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2:
        raise ArrayProblem(f"expected a 2-D array [N, D], got shape {list(arr.shape)}")
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise ArrayProblem(f"row {row}, column {col} is {arr[row, col]}; expected finite numbers")
    big = np.abs(arr) > MAX_ABS_VALUE
    if big.any():
        row, col = (int(v) for v in np.argwhere(big)[0])
        raise ArrayProblem(f"row {row}, column {col} is {arr[row, col]:g}; expected values within "
                           f"+-{MAX_ABS_VALUE:g} (so that they stay finite as {np.dtype(dtype).name}, squared)")
    return arr


def read_array(path: Path, *, where: str, dtype: np.dtype | type = np.float64) -> np.ndarray:
    """``load_array`` raising ``ScenarioError`` that names the file and the scenario key ``where``."""
    try:
        return load_array(path, dtype=dtype)
    except ArrayProblem as exc:
        raise ScenarioError(f"{path}: {where}: {exc}") from None


__all__ = ["ArrayProblem", "MAX_ARRAY_BYTES", "file_problem", "load_array", "read_array", "read_bytes"]
