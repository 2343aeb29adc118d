"""Read a file written by ``torch.save`` without importing torch: tensors come back as
read-only NumPy arrays, everything else as the plain Python values it was.

torch's format is a zip archive: ``<name>/data.pkl``, a pickle whose tensors refer to
storages by key, and each storage's raw bytes in ``<name>/data/<key>``. Only the globals a
tensor needs (storage types, ``_rebuild_tensor_v2``, ``OrderedDict``) are resolved; any
other global in the pickle is refused, as ``torch.load(weights_only=True)`` refuses it.
"""
from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

STORAGE_DTYPES = {"HalfStorage": np.float16, "FloatStorage": np.float32, "DoubleStorage": np.float64,
                  "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                  "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class CheckpointError(ValueError):
    """A file that is not a readable torch checkpoint."""


def _rebuild_tensor(storage, offset, size, stride, *_rest):
    if len(size) == 0:
        return storage[offset:offset + 1].reshape(()).copy()
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride), writeable=False)
    return view


def _rebuild_parameter(data, *_rest):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, handle, archive: zipfile.ZipFile, prefix: str):
        super().__init__(handle)
        self.archive, self.prefix = archive, prefix
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise CheckpointError(f"unsupported object in the checkpoint: {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointError(f"unsupported persistent id {pid!r:.40}")
        dtype, key = pid[1], str(pid[2])
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}data/{key}")
            self.storages[key] = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
        return self.storages[key]


def read_checkpoint(path) -> object:
    """The object a ``torch.save`` file holds, tensors as NumPy arrays (see the module docstring)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise CheckpointError(f"{path}: not a torch checkpoint")
            prefix = pickles[0][:-len("data.pkl")]
            order = archive.read(f"{prefix}byteorder").decode().strip() if f"{prefix}byteorder" in archive.namelist() \
                else "little"
            if order != "little":
                raise CheckpointError(f"{path}: {order}-endian checkpoint")
            with archive.open(pickles[0]) as handle:
                return _Unpickler(handle, archive, prefix).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, KeyError, OSError) as exc:
        raise CheckpointError(f"{path}: not a torch checkpoint ({exc.__class__.__name__})") from None
