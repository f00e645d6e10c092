"""save / load: state dicts as .npz files; written atomically, read without ever unpickling."""

from __future__ import annotations

import errno
import io
import math
import os
import pickletools
import secrets
import stat
import struct
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from tinygrad_rnn.tensor import Tensor

NUMERIC_KINDS = "biufc"                        # bool, int, uint, float, complex


def _fspath(func: str, path: Any) -> str:
    """`path` as a str, or a TypeError/ValueError naming `func` when it cannot be a file name."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{func}: path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not path or "\x00" in path:
        raise ValueError(f"{func}: path {path!r} is not a valid file name")
    return path


# ---- save -----------------------------------------------------------------------------------

def _numeric(key: Any, value: Any) -> np.ndarray:
    """The array to store under `key`; a TypeError naming it when it is not numbers."""
    if not isinstance(key, str):
        raise TypeError(f"save: state dict keys must be str, got {key!r} "
                        f"({type(key).__name__})")
    if "\x00" in key:
        raise ValueError(f"save: state dict key {key!r} contains a NUL character")
    if isinstance(value, Tensor):
        value = value._data
    if isinstance(value, (str, bytes)):
        raise TypeError(f"save: state dict entry {key!r} is a {type(value).__name__}, "
                        "expected an array of numbers")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:   # ragged lists and the like
        raise TypeError(f"save: state dict entry {key!r} is not an array of numbers "
                        f"({err})") from None
    if arr.dtype.kind not in NUMERIC_KINDS:
        raise TypeError(f"save: state dict entry {key!r} has dtype {arr.dtype} "
                        f"({type(value).__name__}), expected an array of numbers")
    return arr


def _existing(path: str, target: str) -> os.stat_result | None:
    """The stat of the file `save` would replace (None if there is none), checked replaceable.

    A file is replaced only if the caller may write it and its owner write bit is set: root
    too respects a read-only file, as careful tools do.
    """
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return None
    except OSError as err:                     # a symlink loop, a path through a regular file
        raise OSError(err.errno, f"save: cannot use {path}: {err.strerror}", path) from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"save: {path} is a directory", path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"save: {path} is not a regular file; refusing to replace it")
    if not (st.st_mode & stat.S_IWUSR) or not os.access(target, os.W_OK):
        raise PermissionError(errno.EACCES, f"save: {path} is not writable "
                              f"(mode {stat.filemode(st.st_mode)}); it was not replaced", path)
    return st


def _open_temp(path: str, target: str) -> tuple[int, str]:
    """Create an empty temporary file beside `target`: mode 0o666 less the umask (the kernel
    applies umask and default ACLs), exclusive, so no other file is ever touched."""
    folder, base = os.path.split(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{base[:200]}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
        except OSError as err:
            raise OSError(err.errno, f"save: cannot create a file in {folder} "
                          f"({err.strerror}); {path} was not changed", folder) from None
    raise FileExistsError(f"save: no free temporary name in {folder}")


def _write_npz(f: Any, arrays: dict[str, np.ndarray]) -> None:
    """The .npz layout of np.savez (one stored .npy member per key), never pickling."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write a Module's state_dict (or a mapping name -> array) to `path` as .npz, atomically.

    Every value must be numbers (a TypeError names the key otherwise). The arrays go to a
    temporary file in the target's folder, which is then renamed over it: an interrupted or
    failed save leaves the old file as it was. A symlink is followed (its target is written);
    an existing file keeps its mode (and owner where allowed); a new one gets 0o666 less the
    umask. A file that its owner may not write is never replaced (PermissionError).
    """
    state = obj.state_dict() if hasattr(obj, "state_dict") else obj
    if not isinstance(state, Mapping):
        raise TypeError(f"save: expected a Module or a dict of arrays, got {type(obj).__name__}")
    path = _fspath("save", path)
    arrays = {key: _numeric(key, value) for key, value in state.items()}
    target = os.path.realpath(path)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        if os.path.exists(folder):
            raise NotADirectoryError(errno.ENOTDIR, f"save: {folder} is not a folder", folder)
        raise FileNotFoundError(errno.ENOENT, f"save: folder {folder} does not exist", folder)
    old = _existing(path, target)
    fd, tmp = _open_temp(path, target)
    try:
        with os.fdopen(fd, "wb") as f:
            if old is not None:
                _keep_owner_and_mode(f.fileno(), old)
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError):
            raise OSError(err.errno, f"save: writing {path} failed ({err.strerror or err}); "
                          "the file was not changed", path) from err
        raise
    _sync_folder(folder)


def _keep_owner_and_mode(fd: int, old: os.stat_result) -> None:
    """Give the new file the replaced one's owner (where allowed) and then its mode."""
    if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.fchown(fd, old.st_uid, old.st_gid)
        except OSError:                        # only root may give a file away
            pass
    os.fchmod(fd, stat.S_IMODE(old.st_mode))


def _sync_folder(folder: str) -> None:
    """Flush the rename to disk where the platform allows opening a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- load -----------------------------------------------------------------------------------

def read_npz(path: Any, func: str, objects: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Read every member of the .npz at `path`; errors name `func`, the path and the member.

    Members must be numeric .npy arrays; only those named in `objects` may be object arrays,
    and those are decoded by `_plain_pickle`, which builds lists and numbers and nothing else.
    """
    path = _fspath(func, path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{func}: no file at {path}", path) from None
    except OSError as err:
        raise OSError(err.errno, f"{func}: cannot read {path}: {err.strerror}", path) from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"{func}: {path} is a directory", path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{func}: {path} is not a regular file")
    try:
        with open(path, "rb") as f:
            return _archive(f, path, func, objects)
    except OSError as err:                     # open or read refused: permission, I/O error
        raise OSError(err.errno, f"{func}: cannot read {path}: {err.strerror}", path) from None


def _archive(f: Any, path: str, func: str, objects: tuple[str, ...]) -> dict[str, np.ndarray]:
    if f.read(6) == b"\x93NUMPY":
        raise ValueError(f"{func}: {path} holds a single .npy array, not an .npz of named arrays")
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as zf:
            return _members(zf, path, func, objects)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as err:
        raise ValueError(f"{func}: {path} is not a readable .npz ({err})") from None


def _members(zf: zipfile.ZipFile, path: str, func: str,
             objects: tuple[str, ...]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy") or info.is_dir():
            raise ValueError(f"{func}: {path} member {info.filename!r} is not a .npy array; "
                             "refusing to load it")
        key = info.filename[:-4]
        if key in out:
            raise ValueError(f"{func}: {path} has two members named {key!r}")
        where = f"{func}: {path} member {key!r}"
        with zf.open(info) as member:
            try:
                out[key] = _read_npy(member, info.file_size, where, key in objects)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
                msg = str(err)
                raise ValueError(msg if msg.startswith(where) else f"{where}: {msg}") from None
    return out


def _read_npy(member: Any, size: int, where: str, objects: bool) -> np.ndarray:
    """One .npy member: its header checked against its size before anything is allocated."""
    version = np.lib.format.read_magic(member)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"{where}: unsupported .npy format version {version}")
    reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
              else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = reader(member)
    if any(n < 0 for n in shape):
        raise ValueError(f"{where}: negative shape {shape}")
    body = size - member.tell()
    if dtype.hasobject:
        if not objects:
            raise ValueError(f"{where} holds Python objects (pickled data, dtype {dtype}); "
                             "refusing to unpickle it: only numeric arrays load")
        return _object_array(_plain_pickle(member.read(body), where), shape, fortran, where)
    if dtype.kind not in NUMERIC_KINDS:
        raise ValueError(f"{where} has dtype {dtype}, not a numeric array")
    nbytes = math.prod(shape) * dtype.itemsize
    if body != nbytes:
        raise ValueError(f"{where}: header says {shape} {dtype} ({nbytes} bytes) but it "
                         f"holds {body} bytes")
    buf = bytearray(nbytes)
    view, got = memoryview(buf), 0
    while got < nbytes:
        n = member.readinto(view[got:])
        if not n:
            raise ValueError(f"{where}: truncated ({got} of {nbytes} bytes)")
        got += n
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an .npz of named numeric arrays into a state dict (name -> np.ndarray).

    Nothing is unpickled: a member holding objects, strings, bytes or anything but a .npy
    array is a ValueError naming it, as is a truncated or non-npz file; nothing half-loads.
    """
    return read_npz(path, "load")


# ---- a pickle reader that cannot run code ---------------------------------------------------
# The Keras imdb.npz stores its reviews as pickled object arrays of int lists. `_plain_pickle`
# walks the opcodes (pickletools' readers only decode them) and builds lists, tuples, numbers and
# strings itself; the few numpy names that rebuild an object array are recorded as inert
# markers, never imported or called. Any other name or opcode is refused.

_NAMES = {("numpy.core.multiarray", "_reconstruct"): "reconstruct",
          ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
          ("numpy", "ndarray"): "ndarray", ("numpy", "dtype"): "dtype",
          ("_codecs", "encode"): "encode"}
_VALUES = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT",
           "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
           "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_OPCODES = {ord(op.code): op for op in pickletools.opcodes}


class _Call:
    """An inert record of `name(*args)` with its BUILD state; nothing is ever called."""

    def __init__(self, name: str, args: tuple[Any, ...]) -> None:
        self.name, self.args = name, args
        self.state: Any = None


def _plain_pickle(data: bytes, where: str) -> Any:
    """Decode a pickle made of lists, tuples, numbers, strings and the `_NAMES` markers."""
    stack: list = []
    marks: list[int] = []
    memo: dict = {}
    stream, pos = io.BytesIO(data), 0
    try:
        while True:
            code = data[pos]
            if code == 0x4B:                   # BININT1, BININT2, BININT: most of a review,
                stack.append(data[pos + 1])    # decoded inline: twice as fast as genops
                pos += 2
                continue
            if code == 0x4D:
                stack.append(data[pos + 1] | data[pos + 2] << 8)
                pos += 3
                continue
            if code == 0x4A:
                stack.append(struct.unpack_from("<i", data, pos + 1)[0])
                pos += 5
                continue
            op = _OPCODES.get(code)
            if op is None:
                raise ValueError(f"unknown opcode {code:#04x} at byte {pos}")
            stream.seek(pos + 1)               # pickletools' own readers decode the argument
            arg: Any = op.arg.reader(stream) if op.arg is not None else None
            pos, name = stream.tell(), op.name
            if name in _VALUES:
                stack.append(arg)
            elif name in _CONSTANTS:
                stack.append(_CONSTANTS[name])
            elif name == "MARK":
                marks.append(len(stack))
            elif name in ("EMPTY_LIST", "EMPTY_TUPLE"):
                stack.append([] if name == "EMPTY_LIST" else ())
            elif name in ("APPEND", "APPENDS", "LIST", "TUPLE"):
                start = len(stack) - 1 if name == "APPEND" else marks.pop()
                items = stack[start:]
                del stack[start:]
                if name in ("LIST", "TUPLE"):
                    stack.append(items if name == "LIST" else tuple(items))
                elif type(stack[-1]) is list:
                    stack[-1].extend(items)
                else:
                    raise ValueError(f"{name} onto a {type(stack[-1]).__name__}")
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                group = tuple(stack[-n:])
                del stack[-n:]
                stack.append(group)
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            elif name in ("GLOBAL", "STACK_GLOBAL"):
                module, qual = arg.split(" ", 1) if name == "GLOBAL" else stack[-2:]
                if name == "STACK_GLOBAL":
                    del stack[-2:]
                if (module, qual) not in _NAMES:
                    raise ValueError(f"it names {module}.{qual}, which is not allowed "
                                     "(nothing but plain lists and numbers is read)")
                stack.append(_Call(_NAMES[module, qual], ()))
            elif name == "REDUCE":
                args, func = stack.pop(), stack.pop()
                if not isinstance(func, _Call) or func.args or type(args) is not tuple:
                    raise ValueError("REDUCE of something that is not an allowed name")
                stack.append(_Call(func.name, args))
            elif name == "BUILD":
                state = stack.pop()
                if not isinstance(stack[-1], _Call) or stack[-1].state is not None:
                    raise ValueError("BUILD of something that is not an allowed object")
                stack[-1].state = state
            elif name == "STOP":
                break
            elif name not in ("PROTO", "FRAME"):
                raise ValueError(f"opcode {name} is not allowed (nothing but plain lists "
                                 "and numbers is read)")
        return stack.pop()
    except IndexError:
        raise ValueError(f"{where} is pickled data that cannot be read safely: it is "
                         "truncated or malformed") from None
    except (ValueError, KeyError, TypeError, AttributeError, struct.error) as err:
        raise ValueError(f"{where} is pickled data that cannot be read safely: "
                         f"{err or type(err).__name__}") from None


def _object_array(obj: Any, shape: tuple, fortran: bool, where: str) -> np.ndarray:
    """Check that `obj` is numpy's pickled object array of `shape`; return it as one."""
    ok = (isinstance(obj, _Call) and obj.name == "reconstruct" and obj.args
          and isinstance(obj.args[0], _Call) and obj.args[0].name == "ndarray"
          and type(obj.state) is tuple and len(obj.state) == 5)
    items: Any = obj.state[4] if ok else None  # a list once `ok` holds, checked below
    dtype: Any = obj.state[2] if ok else None
    ok = (ok and type(items) is list and isinstance(dtype, _Call) and dtype.name == "dtype"
          and dtype.args[:1] in (("O8",), ("O4",)) and tuple(obj.state[1]) == shape
          and len(items) == math.prod(shape))
    if not ok:
        raise ValueError(f"{where} is not a pickled object array of shape {shape}")
    if any(isinstance(item, _Call) for item in items):
        raise ValueError(f"{where} holds objects other than lists, numbers and strings")
    arr = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):          # one cell each: numpy would nest equal lists
        arr[i] = item
    return arr.reshape(shape, order="F" if fortran else "C")
