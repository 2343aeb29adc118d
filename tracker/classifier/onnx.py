"""A minimal ONNX writer: enough of the protobuf wire format to describe a CNN for OpenCV's
DNN module (``cv2.dnn.readNetFromONNX``), so that CPU inference needs neither torch nor
the ``onnx`` package.

Only what our networks use is here: a graph of nodes with int / ints / float attributes,
float32 initialisers given as raw bytes, and float32 inputs and outputs with a dynamic
batch dimension. Field numbers are those of onnx.proto (ONNX IR version 7, opset 13).
"""
from __future__ import annotations

import struct

import numpy as np

IR_VERSION = 7
OPSET = 13
FLOAT = 1                                  # TensorProto.DataType
ATTR_FLOAT, ATTR_INT, ATTR_INTS = 1, 2, 7   # AttributeProto.AttributeType


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1                 # negative int64 as two's complement, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# A message is a list of byte chunks, joined once at the end (the weights are not copied
# into ever larger nested messages on the way).

def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, value: int) -> list:
    return [_key(field, 0) + _varint(int(value))]


def _sub(field: int, chunks) -> list:
    """A length-delimited field holding ``chunks`` (bytes, memoryviews or a message)."""
    chunks = [chunks] if isinstance(chunks, (bytes, memoryview)) else list(chunks)
    return [_key(field, 2) + _varint(sum(len(c) for c in chunks)), *chunks]


def _str(field: int, value: str) -> list:
    return _sub(field, value.encode())


def _float(field: int, value: float) -> list:
    return [_key(field, 5) + struct.pack("<f", float(value))]


def attribute(name: str, value) -> list:
    """An AttributeProto: an int, a float, or a list of ints."""
    if isinstance(value, (list, tuple)):
        return _str(1, name) + [c for v in value for c in _int(8, v)] + _int(20, ATTR_INTS)
    if isinstance(value, float):
        return _str(1, name) + _float(2, value) + _int(20, ATTR_FLOAT)
    return _str(1, name) + _int(3, value) + _int(20, ATTR_INT)


def node(op: str, inputs, outputs, name: str = "", **attrs) -> list:
    """A NodeProto."""
    body = [c for i in inputs for c in _str(1, i)] + [c for o in outputs for c in _str(2, o)]
    body += _str(3, name or outputs[0]) + _str(4, op)
    return body + [c for k, v in attrs.items() for c in _sub(5, attribute(k, v))]


def tensor(name: str, array: np.ndarray) -> list:
    """A float32 TensorProto holding ``array`` as raw little-endian bytes (not copied when
    it is float32 and contiguous already)."""
    array = np.ascontiguousarray(array, dtype="<f4")
    body = [c for d in array.shape for c in _int(1, d)] + _int(2, FLOAT) + _str(8, name)
    return body + _sub(9, memoryview(array).cast("B"))


def value_info(name: str, dims) -> list:
    """A float32 ValueInfoProto; a str in ``dims`` is a named (dynamic) dimension."""
    shape = [c for d in dims for c in _sub(1, _str(2, d) if isinstance(d, str) else _int(1, d))]
    tensor_type = _int(1, FLOAT) + _sub(2, shape)
    return _str(1, name) + _sub(2, _sub(1, tensor_type))


def model(nodes: list, initializers: list, inputs: list, outputs: list, name: str = "graph") -> bytes:
    """A serialised ModelProto of one graph (the one copy of the weights made here)."""
    graph = [c for n in nodes for c in _sub(1, n)] + _str(2, name)
    graph += [c for t in initializers for c in _sub(5, t)]
    graph += [c for i in inputs for c in _sub(11, i)] + [c for o in outputs for c in _sub(12, o)]
    opset = _str(1, "") + _int(2, OPSET)
    return b"".join(_int(1, IR_VERSION) + _str(2, "facetrack") + _sub(7, graph) + _sub(8, opset))
