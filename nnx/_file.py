"""Host boundary: the file a model lives in, one safetensors container with nnx's JSON header.

Tensors are raw numbers; the header is plain JSON under the metadata key ``"nnx"``, checked
for the format and its version before anything else is read. Reading executes nothing from
a file. Writes go to a temporary file that is fsynced and renamed over the target, so a
crash leaves the old file or the new one, never half of one. What the header and the tensors
hold is ``nnx.io``'s business.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import safetensors
import safetensors.numpy

FORMAT = "nnx"
# 2: the tensors are Model.get_state (the step counter among them), dtypes in the configs.
FORMAT_VERSION = 2


class ModelFileError(ValueError):
    """A model file that cannot be used: truncated, corrupt, foreign, too new, or mismatched."""


def check_writable(path: Any, what: str) -> None:
    """Refuse, before any work, a ``path`` a save could not write: a folder, a missing folder,
    a folder without write permission (or on a read-only file system)."""
    path = Path(path)
    if path.is_dir():
        example = str(path / "model.nnx")
        raise IsADirectoryError(
            f"{what}={str(path)!r} is a folder; name a file in it, e.g. {example!r}."
        )
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(
            f"the folder of {what}={str(path)!r} does not exist; create it first."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            f"cannot write in {str(folder)!r}, the folder of {what}={str(path)!r} (read-only "
            "or no permission); choose another folder."
        )


def write(path: Path, tensors: dict[str, Any], spec: dict[str, Any]) -> None:
    """Write host ``tensors`` and the header ``spec`` (format and version added) atomically."""
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **spec}
    # default=float turns 0-d arrays (a regression accuracy's precision) into numbers.
    metadata = {FORMAT: json.dumps(header, default=float, allow_nan=False)}
    atomic_write(path, safetensors.numpy.save(tensors, metadata=metadata))


def _write_all(file: BinaryIO, payload: bytes) -> None:
    file.write(payload)  # the one write of a save (tests make it fail halfway)


def atomic_write(path: Path, payload: bytes) -> None:
    """Write a temporary file next to ``path``, fsync it, then rename it over ``path``.

    The temporary's name carries the writer's process id, so the next save to ``path``
    removes what a writer killed mid-save left behind. A file written over keeps its
    permissions, and the temporary has them from its first byte.
    """
    path = Path(os.path.realpath(path))  # through a symbolic link: replace what it points to
    if not path.parent.is_dir():
        raise FileNotFoundError(f"save: folder {path.parent} does not exist; create it first.")
    _remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = None
    try:
        # Born with the target's permissions (the umask may only take some away), never
        # wider: a 0640 model's bytes are not readable by others while they are written.
        # A new file gets open()'s default, 0666 less the umask.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
        with open(fd, "wb") as file:
            _write_all(file, payload)
            file.flush()
            os.fsync(file.fileno())
        if mode is not None:
            os.chmod(tmp, mode)  # what the umask took away, back
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno is not None:  # a full disk, a read-only one
            raise type(err)(
                err.errno,
                f"save: cannot write {path} ({err.strerror}); the previous file, if "
                "any, is unchanged",
            ) from err
        raise
    if hasattr(os, "O_DIRECTORY"):  # POSIX: make the rename itself survive a power cut
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        with contextlib.suppress(OSError):  # best effort: some file systems refuse it
            os.fsync(dir_fd)
        os.close(dir_fd)


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporaries of saves to ``path`` whose writer process is gone (killed)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*-*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, or a platform without signal 0: keep it
        return True
    return True


def _check_sizes(path: Path) -> None:
    """Read the header alone and refuse a file whose tensors do not end where the file ends
    (a small valid header on a large file), before the whole file is read."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(8)
            header_size = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 2 <= header_size <= min(size - 8, _MAX_HEADER):
                return  # safetensors says what is wrong with it
            header = json.loads(file.read(header_size))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"load: no model file at {path}; check the path.") from err
    except (ValueError, RecursionError):  # not JSON: safetensors says so
        return
    try:
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
        data = max(ends, default=0)
    except (TypeError, LookupError, AttributeError):  # malformed: safetensors says how
        return
    if type(data) is int and 8 + header_size + data != size:
        raise ModelFileError(
            f"{path}: {size} bytes, but its header describes {8 + header_size + data}; the "
            "file is truncated, or has something appended. nnx read only its header."
        )


def check_ranges(path: Path, tensors: dict[str, Any], owners: dict[str, tuple[str, str]]) -> None:
    """Refuse a float tensor with values beyond the range of the dtype it loads into
    (``owners``: tensor name -> (dtype name, what holds it)), before anything is set."""
    for name, (dtype, owner) in owners.items():
        tensor = tensors[name]
        if tensor.dtype.kind != "f" or tensor.size == 0:
            continue
        largest, limit = float(np.max(np.abs(tensor))), float(np.finfo(dtype).max)
        if largest > limit:
            raise ModelFileError(
                f"{path}: {name} holds values up to {largest:.3g}, beyond the range of "
                f"{dtype}, the dtype of {owner} (|x| <= {limit:.3g}): it would load as "
                "infinity. Load it into a model built with dtype='float64', or save it again "
                "from a model whose values fit."
            )


# A header of a model file is a few KiB; safetensors itself allows 100 MB.
_MAX_HEADER = 100_000_000


def read(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checked nnx header and the tensors of ``path``."""
    _check_sizes(path)
    try:
        payload = path.read_bytes()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"load: no model file at {path}; check the path.") from err
    try:
        tensors = safetensors.numpy.load(payload)
    except safetensors.SafetensorError as err:
        raise ModelFileError(
            f"{path}: not a readable safetensors file ({err}). It is truncated, corrupt, or not "
            "an nnx model file (nnx reads only safetensors files, never pickles)."
        ) from err
    except (KeyError, TypeError, ValueError) as err:  # a dtype NumPy has not (BF16, F8_E4M3)
        raise ModelFileError(
            f"{path}: holds a tensor of a dtype NumPy cannot read ({err}); nnx model files "
            "hold float32, float64 and int64 tensors only."
        ) from err
    header_size = int.from_bytes(payload[:8], "little")  # safetensors checked the header
    raw = (json.loads(payload[8 : 8 + header_size]).get("__metadata__") or {}).get(FORMAT)
    try:
        spec = None if raw is None else json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested beyond Python's stack
        spec = None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelFileError(
            f"{path}: a safetensors file without nnx metadata (a JSON object with "
            f"format={FORMAT!r} under the key {FORMAT!r}); it was not written by nnx."
        )
    version = spec.get("format_version")
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written in nnx file format version {version!r}, but this nnx reads "
            f"versions 1 to {FORMAT_VERSION}. Upgrade nnx (in its clone: git pull, then "
            "pip install -e .) to read it."
        )
    return spec, tensors
