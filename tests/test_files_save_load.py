"""save/load file rules: atomic, permissions and owner kept, symlinks followed, numbers only.

Every refusal asserts the error type, that the message names the culprit, and that nothing on
disk changed (same bytes, same mode, no temporary file left behind).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import stat
import zipfile

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, serialization

NOBODY = 65534


def snapshot(folder):
    """Every file below `folder`: name -> (sha256 of bytes or link target, mode)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in files + dirs:
            p = os.path.join(root, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                body = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    body = hashlib.sha256(f.read()).hexdigest()
            else:
                body = None
            out[os.path.relpath(p, folder)] = (body, st.st_mode, st.st_uid)
    return out


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "m.npz"
    tg.save({"w": np.arange(3.0)}, path)
    return path


# ---------------------------------------------------------------- what save accepts

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128", ">f8", "<i4"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_numeric_dtype_round_trips_exactly(tmp_path, dtype):
    arr = (np.arange(12) % 5).astype(dtype).reshape(3, 4)
    tg.save({"a": arr}, tmp_path / "d.npz")
    back = tg.load(tmp_path / "d.npz")["a"]
    assert back.dtype == arr.dtype and back.shape == (3, 4)
    np.testing.assert_array_equal(back, arr)
    assert back.flags.writeable and back.flags.owndata or back.base is not None


@pytest.mark.parametrize("value", [
    np.float32(2.5), 3, 2.5, True, [1, 2, 3], [[1.0, 2.0], [3.0, 4.0]], np.zeros((0, 3)),
    np.asfortranarray(np.arange(6.0).reshape(2, 3)), np.arange(10.0)[::3],
], ids=["np-scalar", "int", "float", "bool", "list", "nested", "empty", "fortran", "strided"])
def test_array_likes_of_numbers_save_and_load_as_np_asarray_gives(tmp_path, value):
    tg.save({"v": value}, tmp_path / "v.npz")
    back = tg.load(tmp_path / "v.npz")["v"]
    np.testing.assert_array_equal(back, np.asarray(value))
    assert back.shape == np.asarray(value).shape


def test_keys_are_kept_verbatim_even_numpy_savez_keywords(tmp_path):
    state = {"file": np.ones(1), "allow_pickle": np.zeros(1), "a/b.c": np.full(1, 2.0),
             "": np.full(1, 3.0), "重み": np.full(1, 4.0), "x.npy": np.full(1, 5.0)}
    tg.save(state, tmp_path / "k.npz")
    back = tg.load(tmp_path / "k.npz")
    assert list(back) == list(state)
    for key, value in state.items():
        np.testing.assert_array_equal(back[key], value)


def test_tensors_parameters_and_modules_save(tmp_path):
    lin = nn.Linear(2, 3)
    tg.save(lin, tmp_path / "lin.npz")
    tg.save({"t": tg.Tensor([1.0, 2.0], requires_grad=True), "p": lin.weight},
            tmp_path / "t.npz")
    assert sorted(tg.load(tmp_path / "lin.npz")) == ["bias", "weight"]
    back = tg.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(back["p"], lin.weight.data)
    assert back["t"].tolist() == [1.0, 2.0]


def test_the_file_is_a_plain_npz_that_numpy_reads_without_pickle(tmp_path):
    tg.save({"w": np.eye(2)}, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["w"], np.eye(2))


# ---------------------------------------------------------------- what save refuses

class Opaque:
    pass


BAD_VALUES = {
    "str": "weights", "bytes": b"\x00\x01", "None": None, "object": Opaque(),
    "dict": {"a": 1}, "set": {1, 2}, "ragged": [[1.0], [2.0, 3.0]], "str-list": ["a", "b"],
    "str-array": np.array(["a", "b"]), "bytes-array": np.array([b"a"]),
    "object-array": np.array([1, None], dtype=object), "module": nn.Linear(1, 1),
    "datetime": np.array(["2020-01-01"], dtype="datetime64[D]"),
    "timedelta": np.array([1], dtype="timedelta64[s]"),
    "structured": np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]),
    "void": np.zeros(2, dtype="V4"),
}


@pytest.mark.parametrize("kind", sorted(BAD_VALUES))
def test_a_non_numeric_value_is_refused_naming_the_key_and_nothing_is_written(ckpt, kind):
    before = snapshot(ckpt.parent)
    state = {"good": np.ones(2), f"bad_{kind}": BAD_VALUES[kind]}
    with pytest.raises(TypeError, match=f"save: state dict entry 'bad_{kind}'"):
        tg.save(state, ckpt)
    with pytest.raises(TypeError, match=f"'bad_{kind}'"):
        tg.save(state, ckpt.parent / "new.npz")
    assert snapshot(ckpt.parent) == before


@pytest.mark.parametrize("key, exc, match", [
    (3, TypeError, "keys must be str, got 3"), (("a", 1), TypeError, r"keys must be str"),
    (None, TypeError, "keys must be str, got None"), (b"w", TypeError, "keys must be str"),
    ("a\x00b", ValueError, "NUL"),
])
def test_a_bad_key_is_refused(ckpt, key, exc, match):
    before = snapshot(ckpt.parent)
    with pytest.raises(exc, match=match):
        tg.save({key: np.ones(1)}, ckpt)
    assert snapshot(ckpt.parent) == before


@pytest.mark.parametrize("obj", [42, None, "state", [np.ones(1)], np.ones(3), (("w", 1),)])
def test_save_of_something_that_is_not_a_state_dict(ckpt, obj):
    before = snapshot(ckpt.parent)
    with pytest.raises(TypeError, match="save: expected a Module or a dict of arrays, got"):
        tg.save(obj, ckpt)
    assert snapshot(ckpt.parent) == before


@pytest.mark.parametrize("path, exc, match", [
    (3, TypeError, "save: path must be a str or os.PathLike, got int"),
    (None, TypeError, "got NoneType"), (["m.npz"], TypeError, "got list"),
    (2.5, TypeError, "got float"), ("", ValueError, "not a valid file name"),
    ("a\x00b.npz", ValueError, "not a valid file name"),
])
def test_save_bad_path_types(path, exc, match):
    with pytest.raises(exc, match=match):
        tg.save({"w": np.ones(1)}, path)


def test_save_into_a_directory_a_fifo_or_a_missing_folder(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "dir.npz").mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(IsADirectoryError, match="save: .*dir.npz is a directory"):
        tg.save({"w": np.ones(1)}, tmp_path / "dir.npz")
    with pytest.raises(ValueError, match="save: .*pipe is not a regular file"):
        tg.save({"w": np.ones(1)}, tmp_path / "pipe")
    with pytest.raises(FileNotFoundError, match="save: folder .*nope does not exist"):
        tg.save({"w": np.ones(1)}, tmp_path / "nope" / "m.npz")
    with pytest.raises(NotADirectoryError, match="save: .*pipe is not a folder"):
        tg.save({"w": np.ones(1)}, tmp_path / "pipe" / "m.npz")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- atomic, and failures leave nothing

def test_a_failure_while_writing_keeps_the_old_file_and_leaves_no_temporary(ckpt, monkeypatch):
    before = snapshot(ckpt.parent)

    def disk_full(f, arrays):
        f.write(b"PK partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(serialization, "_write_npz", disk_full)
    with pytest.raises(OSError, match=r"save: writing .*m\.npz failed \(No space left") as info:
        tg.save({"w": np.zeros(3)}, ckpt)
    assert info.value.errno == errno.ENOSPC
    assert snapshot(ckpt.parent) == before


def test_an_interrupt_while_writing_keeps_the_old_file(ckpt, monkeypatch):
    before = snapshot(ckpt.parent)

    def interrupted(f, arrays):
        f.write(b"PK")
        raise KeyboardInterrupt
    monkeypatch.setattr(serialization, "_write_npz", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tg.save({"w": np.zeros(3)}, ckpt)
    assert snapshot(ckpt.parent) == before


def test_a_failed_rename_keeps_the_old_file(ckpt, monkeypatch):
    before = snapshot(ckpt.parent)

    def refuse(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")
    monkeypatch.setattr(serialization.os, "replace", refuse)
    with pytest.raises(OSError, match=r"save: writing .*m\.npz failed"):
        tg.save({"w": np.zeros(3)}, ckpt)
    monkeypatch.undo()
    assert snapshot(ckpt.parent) == before


def test_a_name_as_long_as_the_system_allows_still_saves(tmp_path):
    path = tmp_path / ("w" * 251 + ".npz")     # 255 bytes: the temporary name is shortened
    tg.save({"w": np.ones(1)}, path)
    assert os.listdir(tmp_path) == [path.name]


def test_the_temporary_file_lives_beside_the_target_and_is_gone_after(tmp_path, monkeypatch):
    seen = []
    real = serialization._write_npz

    def spy(f, arrays):
        seen.append(sorted(os.listdir(tmp_path)))
        real(f, arrays)
    monkeypatch.setattr(serialization, "_write_npz", spy)
    tg.save({"w": np.ones(2)}, tmp_path / "m.npz")
    assert len(seen[0]) == 1 and seen[0][0].startswith(".m.npz.") and seen[0][0].endswith(".tmp")
    assert os.listdir(tmp_path) == ["m.npz"]


# ---------------------------------------------------------------- modes, umask, owner

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664),
                                         (0o027, 0o640)])
def test_a_new_file_honours_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        tg.save({"w": np.ones(1)}, tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m.npz").st_mode) == mode


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644, 0o664, 0o666, 0o755, 0o200])
def test_an_existing_files_mode_is_kept(ckpt, mode):
    os.chmod(ckpt, mode)
    old = os.umask(0o077)
    try:
        tg.save({"w": np.zeros(4)}, ckpt)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(ckpt).st_mode) == mode
    os.chmod(ckpt, 0o600)
    assert tg.load(ckpt)["w"].tolist() == [0.0] * 4


@pytest.mark.parametrize("mode", [0o444, 0o400, 0o555, 0o044, 0o000])
def test_a_file_its_owner_may_not_write_is_never_replaced_even_by_root(ckpt, mode):
    os.chmod(ckpt, mode)
    before = snapshot(ckpt.parent)
    with pytest.raises(PermissionError, match=r"save: .*m\.npz is not writable .*not replaced"):
        tg.save({"w": np.zeros(3)}, ckpt)
    assert snapshot(ckpt.parent) == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="giving a file to another user needs root")
def test_root_replacing_another_users_file_keeps_its_owner_and_mode(ckpt):
    os.chown(ckpt, NOBODY, NOBODY)
    os.chmod(ckpt, 0o640)
    tg.save({"w": np.zeros(3)}, ckpt)
    st = os.stat(ckpt)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o640)


# ---------------------------------------------------------------- symlinks

def test_saving_over_a_symlink_writes_its_target_and_keeps_the_link(tmp_path):
    real_dir, link_dir = tmp_path / "real", tmp_path / "links"
    real_dir.mkdir()
    link_dir.mkdir()
    target = real_dir / "model.npz"
    tg.save({"w": np.ones(2)}, target)
    os.chmod(target, 0o640)
    link = link_dir / "latest.npz"
    link.symlink_to(os.path.relpath(target, link_dir))
    tg.save({"w": np.full(2, 7.0)}, link)
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(target, link_dir)
    assert tg.load(target)["w"].tolist() == [7.0, 7.0]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert sorted(os.listdir(real_dir)) == ["model.npz"]
    assert sorted(os.listdir(link_dir)) == ["latest.npz"]


def test_a_chain_of_symlinks_and_a_dangling_one(tmp_path):
    target = tmp_path / "t.npz"
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("t.npz")           # dangling until the first save
    tg.save({"w": np.ones(1)}, tmp_path / "a")
    assert target.is_file() and (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()
    tg.save({"w": np.zeros(1)}, tmp_path / "a")
    assert tg.load(tmp_path / "a")["w"].tolist() == [0.0]


def test_a_symlink_to_a_read_only_file_is_refused(ckpt):
    os.chmod(ckpt, 0o444)
    link = ckpt.parent / "link.npz"
    link.symlink_to(ckpt.name)
    before = snapshot(ckpt.parent)
    with pytest.raises(PermissionError, match=r"save: .*link\.npz is not writable"):
        tg.save({"w": np.zeros(3)}, link)
    assert snapshot(ckpt.parent) == before


def test_a_symlink_loop_is_a_clear_error(tmp_path):
    (tmp_path / "x").symlink_to("y")
    (tmp_path / "y").symlink_to("x")
    before = snapshot(tmp_path)
    with pytest.raises(OSError, match="save: cannot use .*x"):
        tg.save({"w": np.ones(1)}, tmp_path / "x")
    with pytest.raises(OSError, match="load: cannot read .*x"):
        tg.load(tmp_path / "x")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- as an unprivileged user

def as_nobody(fn):
    """Run fn() as uid/gid 65534 in a forked child (when root); 'ok' or 'Type: message'."""
    def call():
        try:
            fn()
            return "ok"
        except Exception as err:  # noqa: BLE001 -- reported to the parent, which asserts on it
            return f"{type(err).__name__}: {err}"
    if os.geteuid() != 0:
        return call()                          # already unprivileged
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                               # child: drop privileges, run, report, exit
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = call()
        except BaseException as err:  # noqa: BLE001 -- the child must always report and exit
            out = f"setup failed: {err}"
        os.write(write_end, out.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    return out


needs_fork = pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(os, "geteuid"),
                                reason="dropping privileges needs fork and POSIX uids")


@pytest.fixture
def open_dir(tmp_path_factory):
    """A folder anyone may write (pytest's tmp folders are 0700, closed to other users)."""
    import shutil
    import tempfile
    folder = tempfile.mkdtemp(prefix="tg-files-")
    os.chmod(folder, 0o777)
    yield folder
    shutil.rmtree(folder)


@needs_fork
def test_an_unprivileged_user_cannot_replace_someone_elses_file(open_dir):
    path = os.path.join(open_dir, "theirs.npz")
    tg.save({"w": np.ones(2)}, path)
    os.chmod(path, 0o644)
    if os.geteuid() == 0:
        os.chown(path, 0, 0)
    before = snapshot(open_dir)
    out = as_nobody(lambda: tg.save({"w": np.zeros(2)}, path))
    assert out.startswith("PermissionError") and "theirs.npz is not writable" in out, out
    assert snapshot(open_dir) == before


@needs_fork
def test_an_unprivileged_user_cannot_replace_their_own_read_only_file(open_dir):
    path = os.path.join(open_dir, "mine.npz")
    assert as_nobody(lambda: tg.save({"w": np.ones(2)}, path)) == "ok"
    os.chmod(path, 0o444)
    before = snapshot(open_dir)
    out = as_nobody(lambda: tg.save({"w": np.zeros(2)}, path))
    assert out.startswith("PermissionError") and "mine.npz is not writable" in out, out
    assert snapshot(open_dir) == before


@needs_fork
def test_an_unprivileged_user_replaces_their_writable_file_keeping_mode(open_dir):
    path = os.path.join(open_dir, "mine.npz")
    assert as_nobody(lambda: tg.save({"w": np.ones(2)}, path)) == "ok"
    os.chmod(path, 0o640)
    assert as_nobody(lambda: tg.save({"w": np.zeros(2)}, path)) == "ok"
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == os.stat(path).st_uid
    assert tg.load(path)["w"].tolist() == [0.0, 0.0]
    assert os.listdir(open_dir) == ["mine.npz"]


@needs_fork
def test_an_unprivileged_user_in_a_folder_they_may_not_write(open_dir):
    os.chmod(open_dir, 0o755)
    before = snapshot(open_dir)
    out = as_nobody(lambda: tg.save({"w": np.zeros(2)}, os.path.join(open_dir, "new.npz")))
    assert out.startswith("PermissionError") and "save: cannot create a file in" in out, out
    assert open_dir in out and snapshot(open_dir) == before


@needs_fork
def test_an_unprivileged_user_cannot_read_a_private_checkpoint(open_dir):
    path = os.path.join(open_dir, "private.npz")
    tg.save({"w": np.ones(2)}, path)
    os.chmod(path, 0o600)
    if os.geteuid() == 0:
        os.chown(path, 0, 0)
    out = as_nobody(lambda: tg.load(path))
    assert out.startswith("PermissionError") and "load: cannot read" in out, out
    assert "private.npz" in out


# ---------------------------------------------------------------- what load refuses

def write_zip(path, members):
    """A zip with `members` (name -> bytes), as np.savez lays it out."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return path


def npy(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_header(descr, shape, body=b""):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + body


class Touch:
    """Unpickling this creates `path`: the proof that a loader ran code from the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickled_object_member(marker):
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = [1, 2], Touch(marker)
    return npy(arr, allow_pickle=True)


BAD_MEMBERS = {
    "text member": ({"w.npy": npy(np.ones(2)), "notes.txt": b"hello"},
                    r"member 'notes\.txt' is not a \.npy array"),
    "raw bytes": ({"w.npy": b"just some bytes"}, r"member 'w'.*magic"),
    "str array": ({"s.npy": npy(np.array(["abc"]))}, r"member 's' has dtype <U3, not a numeric"),
    "bytes array": ({"b.npy": npy(np.array([b"ab"]))}, r"member 'b' has dtype \|S2"),
    "object array": ({"o.npy": npy(np.array([1, None], dtype=object), allow_pickle=True)},
                     r"member 'o' holds Python objects .*refusing to unpickle"),
    "datetime": ({"d.npy": npy(np.array(["2020-01-01"], "datetime64[D]"))},
                 r"member 'd' has dtype datetime64"),
    "structured": ({"r.npy": npy(np.zeros(1, [("a", "f4")]))}, r"member 'r' has dtype"),
    "too short": ({"w.npy": npy(np.ones(10))[:-8]}, r"member 'w': header says \(10,\) float64"),
    "too long": ({"w.npy": npy(np.ones(10)) + b"\0" * 8}, r"member 'w': header says"),
    "huge header shape": ({"w.npy": npy_header("<f8", (10**12,), b"\0" * 16)},
                          r"member 'w': header says \(1000000000000,\) float64"),
    "negative shape": ({"w.npy": npy_header("<f8", (-2,))}, r"member 'w'.*shape"),
    "directory entry": ({"sub/": b"", "w.npy": npy(np.ones(1))}, r"member 'sub/'"),
}


@pytest.mark.parametrize("case", sorted(BAD_MEMBERS))
def test_load_refuses_a_member_that_is_not_a_numeric_array_naming_it(tmp_path, case):
    members, match = BAD_MEMBERS[case]
    path = write_zip(tmp_path / "bad.npz", members)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=r"load: .*bad\.npz " + match):
        tg.load(path)
    assert snapshot(tmp_path) == before


def test_a_pickled_member_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    path = write_zip(tmp_path / "evil.npz", {"w.npy": npy(np.ones(2)),
                                              "x.npy": pickled_object_member(marker)})
    with pytest.raises(ValueError, match=r"member 'x' holds Python objects"):
        tg.load(path)
    assert not marker.exists()


def test_a_pickle_file_is_refused_without_being_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "state.npz"
    path.write_bytes(pickle.dumps({"w": Touch(marker)}))
    with pytest.raises(ValueError, match=r"load: .*state\.npz is not a readable \.npz"):
        tg.load(path)
    assert not marker.exists()


def test_duplicate_members_are_refused(tmp_path):
    path = tmp_path / "dup.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("w.npy", npy(np.ones(1)))
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("w.npy", npy(np.zeros(1)))
    with pytest.raises(ValueError, match=r"dup\.npz has two members named 'w'"):
        tg.load(path)


def test_a_corrupted_member_is_named(tmp_path):
    path = tmp_path / "m.npz"
    tg.save({"w": np.arange(100.0)}, path)
    data = bytearray(path.read_bytes())
    data[data.index(b"\x93NUMPY") + 200] ^= 0xFF   # a byte of w's data: the CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"load: .*m\.npz member 'w'.*CRC"):
        tg.load(path)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_a_truncated_file_is_a_clear_error(tmp_path, keep):
    path = tmp_path / "m.npz"
    tg.save({"w": np.arange(1000.0), "b": np.ones(3)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match=r"load: .*m\.npz is not a readable \.npz"):
        tg.load(path)


@pytest.mark.parametrize("body, match", [
    (b"", r"is not a readable \.npz"), (b"hello", r"is not a readable \.npz"),
    (npy(np.ones(3)), r"holds a single \.npy array"), (b"PK\x03\x04garbage", "is not a readable"),
], ids=["empty", "text", "npy", "fake-zip"])
def test_files_that_are_not_npz(tmp_path, body, match):
    path = tmp_path / "f.npz"
    path.write_bytes(body)
    with pytest.raises(ValueError, match=r"load: .*f\.npz " + match):
        tg.load(path)
    assert path.read_bytes() == body


def test_load_paths_that_are_not_files(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(IsADirectoryError, match="load: .* is a directory"):
        tg.load(tmp_path)
    with pytest.raises(ValueError, match="load: .*pipe is not a regular file"):
        tg.load(tmp_path / "pipe")            # never blocks waiting for a writer
    with pytest.raises(FileNotFoundError, match="load: no file at .*missing.npz"):
        tg.load(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="load: path must be a str or os.PathLike, got int"):
        tg.load(3)
    with pytest.raises(ValueError, match="load: path '' is not a valid file name"):
        tg.load("")


def test_an_empty_npz_loads_as_an_empty_dict(tmp_path):
    tg.save({}, tmp_path / "e.npz")
    assert tg.load(tmp_path / "e.npz") == {}


def test_numpy_savez_files_load(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.arange(4).reshape(2, 2), y=np.float16(1.5))
    np.savez_compressed(tmp_path / "c.npz", x=np.arange(300.0))
    a, c = tg.load(tmp_path / "a.npz"), tg.load(tmp_path / "c.npz")
    assert a["x"].tolist() == [[0, 1], [2, 3]] and a["y"].dtype == np.float16
    np.testing.assert_array_equal(c["x"], np.arange(300.0))
