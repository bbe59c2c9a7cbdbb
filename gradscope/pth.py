"""Read PyTorch `.pth` state dicts into NumPy arrays without torch and without running
any code the file carries.

A `.pth` file is a pickle (in a zip archive since torch 1.6, or a sequence of pickles
followed by raw storage bytes before that). Unpickling calls whatever functions the file
names, so `pickle.load` on a stranger's file can run anything. Here a restricted
Unpickler resolves only the few names that rebuild tensors, each to a NumPy stand-in:

    collections.OrderedDict           -> OrderedDict (a container)
    torch._utils._rebuild_tensor_v2   -> a strided view of the storage's array
    torch._utils._rebuild_parameter   -> the same array (nn.Parameter wrapper dropped)
    torch.FloatStorage, ... (dtypes)  -> a name, used by persistent_load to type the storage

Every other global raises UnsafePickleError before anything is called. Storages are
NumPy buffers filled from the archive's raw bytes, never from pickled objects.

    state = read_state_dict("model.pth")    # {name: np.ndarray}, in file order
"""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np

from gradscope.errors import DataError

__all__ = ["UnsafePickleError", "read_state_dict"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch's marker at the start of a pre-zip file

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class UnsafePickleError(DataError):
    """A pickle names something other than tensors and ordered dicts: refused unrun."""


class _Storage:
    """A typed storage stand-in: a flat NumPy buffer, filled from raw bytes."""
    __slots__ = ("key", "array")

    def __init__(self, key, dtype, numel):
        self.key, self.array = key, np.zeros(numel, dtype=dtype)


def _as_int_tuple(v, what):
    if not isinstance(v, tuple) or not all(isinstance(i, int) and i >= 0 for i in v):
        raise DataError(f"a tensor's {what} is not a tuple of non-negative ints: {v!r}")
    return v


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    """_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
    -> a strided view of storage.array (bounds-checked; copied once the file is read)."""
    if not isinstance(storage, _Storage) or not isinstance(offset, int) or offset < 0:
        raise DataError("a tensor in the pickle is not built on a storage")
    size, stride = _as_int_tuple(size, "size"), _as_int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise DataError(f"a tensor's size {size} and stride {stride} differ in length")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if last >= storage.array.size:
        raise DataError(f"a tensor reaches past its storage ({last + 1} > {storage.array.size} elements)")
    item = storage.array.itemsize
    return np.lib.stride_tricks.as_strided(storage.array[offset:], shape=size,
                                           strides=[s * item for s in stride], writeable=False)


class _Callable:
    """A name the unpickler allows, as a fresh attribute-less object (a hostile BUILD
    opcode cannot modify it or anything shared)."""
    __slots__ = ()
    fn = None

    def __call__(self, *args):
        return type(self).fn(*args)


class _RebuildTensor(_Callable):
    __slots__ = ()
    fn = staticmethod(_rebuild_tensor)


class _RebuildParameter(_Callable):
    __slots__ = ()
    fn = staticmethod(lambda data, *_ignored: data)


_ALLOWED = {
    ("collections", "OrderedDict"): lambda: OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _RebuildTensor,
    ("torch._utils", "_rebuild_parameter"): _RebuildParameter,
    **{("torch", name): (lambda name=name: name) for name in _STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    """Resolves only the names in _ALLOWED; storages come from `make_storage`."""

    def __init__(self, file, make_storage):
        super().__init__(file)
        self._make_storage = make_storage

    def find_class(self, module, name):
        make = _ALLOWED.get((module, name))
        if make is None:
            raise UnsafePickleError(f"the pickle refers to {module}.{name}, which is not a tensor or "
                                    "ordered dict: refused (the file may be malicious)")
        return make()

    def persistent_load(self, pid):
        # ('storage', type name, key, location, numel[, view metadata])
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and pid[1] in _STORAGE_DTYPES and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise DataError(f"unsupported storage reference in the pickle: {pid!r:.80}")
        if len(pid) == 6 and pid[5] is not None:
            raise DataError("storage views (pre-1.0 torch files) are not supported")
        return self._make_storage(pid[2], np.dtype(_STORAGE_DTYPES[pid[1]]), pid[4])


def _unpickle(stream, make_storage):
    """One pickle from a binary stream (left just after it), through the allowlist."""
    try:
        return _Unpickler(stream, make_storage).load()
    except DataError:
        raise
    except Exception as e:  # a malformed pickle: any error the pickle machinery raises
        raise DataError(f"unreadable pickle in the .pth file: {type(e).__name__}: {e}") from None


class _StorageTable:
    """Storages by key, each allocated once, no larger than the file could fill."""

    def __init__(self, max_bytes):
        self.max_bytes, self.by_key = max_bytes, {}

    def __call__(self, key, dtype, numel):
        if key not in self.by_key:
            if numel < 0 or numel * dtype.itemsize > self.max_bytes:
                raise DataError(f"storage {key!r} claims {numel} elements, more than the file holds")
            self.by_key[key] = _Storage(key, dtype, numel)
        return self.by_key[key]


def _fill(storage, raw: bytes, little_endian: bool):
    if len(raw) != storage.array.nbytes:
        raise DataError(f"storage {storage.key!r} has {len(raw)} bytes, expected {storage.array.nbytes}")
    dt = storage.array.dtype.newbyteorder("<" if little_endian else ">")
    storage.array[...] = np.frombuffer(raw, dtype=dt)


def _read_zip(path):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise DataError(f"{path!r} is a zip archive but not a torch checkpoint (no <dir>/data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        table = _StorageTable(max_bytes=sum(i.file_size for i in z.infolist()))
        obj = _unpickle(io.BytesIO(z.read(pkl[0])), table)
        order = z.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
        for key, storage in table.by_key.items():
            record = f"{prefix}data/{key}"
            if record not in names:
                raise DataError(f"{path!r} lacks the storage record {record!r}")
            _fill(storage, z.read(record), order == "little")
    return obj


def _read_legacy(path):
    """Pre-1.6 layout: pickles (magic, protocol, sys info, object, storage keys), then per
    storage an int64 element count and its raw bytes."""
    with open(path, "rb") as f:
        data = f.read()
    stream = io.BytesIO(data)
    table = _StorageTable(max_bytes=len(data))

    def next_pickle():
        return _unpickle(stream, table)

    if next_pickle() != LEGACY_MAGIC:
        raise DataError(f"{path!r} is not a torch checkpoint (no zip archive, no legacy magic number)")
    next_pickle()  # protocol version
    info = next_pickle()
    little = info.get("little_endian", True) if isinstance(info, dict) else True
    obj, keys = next_pickle(), next_pickle()
    if not isinstance(keys, list) or set(keys) != set(table.by_key):
        raise DataError(f"{path!r}: the storage list does not match the storages the pickle uses")
    for key in keys:
        storage = table.by_key[key]
        head = stream.read(8)
        if len(head) != 8 or int.from_bytes(head, "little" if little else "big") != storage.array.size:
            raise DataError(f"{path!r}: storage {key!r} has a wrong size header")
        _fill(storage, stream.read(storage.array.nbytes), little)
    return obj


def read_state_dict(path) -> dict:
    """The tensors of a torch state_dict file as {name: np.ndarray} (file order, own memory).

    Raises UnsafePickleError for a pickle naming anything but tensors and ordered dicts,
    DataError for a missing, malformed or non-state-dict file. torch is not needed.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"file not found: {path!r}")
    obj = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
        raise DataError(f"{path!r} does not hold a state_dict (a mapping of names to tensors)")
    return {k: np.array(v) for k, v in obj.items()}  # copies out of the storage buffers
