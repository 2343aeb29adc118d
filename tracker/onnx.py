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


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(int(value))


def _bytes(field: int, value: bytes) -> bytes:
    return _key(field, 2) + _varint(len(value)) + value


def _str(field: int, value: str) -> bytes:
    return _bytes(field, value.encode())


def _float(field: int, value: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", float(value))


def attribute(name: str, value) -> bytes:
    """An AttributeProto: an int, a float, or a list of ints."""
    if isinstance(value, (list, tuple)):
        body = _str(1, name) + b"".join(_int(8, v) for v in value) + _int(20, ATTR_INTS)
    elif isinstance(value, float):
        body = _str(1, name) + _float(2, value) + _int(20, ATTR_FLOAT)
    else:
        body = _str(1, name) + _int(3, value) + _int(20, ATTR_INT)
    return body


def node(op: str, inputs, outputs, name: str = "", **attrs) -> bytes:
    """A NodeProto."""
    body = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs)
    body += _str(3, name or outputs[0]) + _str(4, op)
    body += b"".join(_bytes(5, attribute(k, v)) for k, v in attrs.items())
    return body


def tensor(name: str, array: np.ndarray) -> bytes:
    """A float32 TensorProto holding ``array`` as raw little-endian bytes."""
    array = np.ascontiguousarray(array, dtype="<f4")
    body = b"".join(_int(1, d) for d in array.shape) + _int(2, FLOAT) + _str(8, name)
    return body + _bytes(9, array.tobytes())


def value_info(name: str, dims) -> bytes:
    """A float32 ValueInfoProto; a str in ``dims`` is a named (dynamic) dimension."""
    shape = b"".join(_bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    tensor_type = _int(1, FLOAT) + _bytes(2, shape)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


def model(nodes: list[bytes], initializers: list[bytes], inputs: list[bytes], outputs: list[bytes],
          name: str = "graph") -> bytes:
    """A serialised ModelProto of one graph."""
    graph = b"".join(_bytes(1, n) for n in nodes) + _str(2, name)
    graph += b"".join(_bytes(5, t) for t in initializers)
    graph += b"".join(_bytes(11, i) for i in inputs) + b"".join(_bytes(12, o) for o in outputs)
    opset = _str(1, "") + _int(2, OPSET)
    return _int(1, IR_VERSION) + _str(2, "facetrack") + _bytes(7, graph) + _bytes(8, opset)
