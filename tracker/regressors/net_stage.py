"""A cascade stage that is a small convolutional network (issue 11's learned-feature stage).

The stage sees the normalised face crop of :mod:`tracker.regressors.cascade` resampled once more,
aligned (similarity) on the current shape into a small ``size`` x ``size`` input that
spans ``span`` crop px, and regresses the landmark update from it and from the current
shape (both in that input's frame). It drops into a cascade beside tree stages: same
``update(crops, image_of, shapes, mean_centered)``.

Inference needs no torch: the convolutions (batch norms folded in) run on OpenCV's DNN
module, the fully connected head and the shape-indexed features on NumPy. The network
is trained as a torch module (:mod:`tracker.training.net_stage`) whose state this reads.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from tracker.classifier import onnx
from tracker.classifier.opencv_network import _fold, _Graph
from tracker.geometry.crop import invert, transform_points

MAX_BATCH = 64            # inputs per cv2.dnn forward (it keeps buffers sized for the largest batch)


def tap_layers(widths, local: bool) -> tuple:
    """The layers whose maps the shape-indexed features read: after the 2nd and 3rd widths' blocks."""
    return tuple(2 * k for k in range(1, min(3, len(widths)))) if local else ()


def shapenet_onnx(state: dict, widths, taps) -> tuple[bytes, list]:
    """ONNX bytes of the network's convolutions (input ``input``, (N, 1, S, S)) and the names
    of its outputs: the maps of layers ``taps``, then the last map."""
    g, x, outputs = _Graph(), "input", []
    last = 2 * len(widths) - 1          # a strided convolution per width, one more after each but the first, a last one
    for index in range(last + 1):
        w, b = _fold(state, f"features.{index}.0", f"features.{index}.1")
        stride = 2 if index == 0 or (index % 2 == 1 and index < last) else 1
        x = g.op("Conv", [x, g.const(f"conv{index}.w", w), g.const(f"conv{index}.b", b)], f"conv{index}",
                 kernel_shape=[3, 3], strides=[stride, stride], pads=[1, 1, 1, 1])
        x = g.op("Relu", [x], f"map{index}")
        if index in taps or index == last:
            outputs.append(x)
    graph = onnx.model(g.nodes, g.weights, [onnx.value_info("input", ["n", 1, "s", "s"])],
                       [onnx.value_info(name, ["n", "c", "h", "w"]) for name in outputs], name="shape_net")
    return graph, outputs


def sample_bilinear(maps: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``maps`` (N, C, H, W) read at ``points`` (N, P, 2) in map px (x, y; pixel centres at
    integers), bilinear, zero outside the map -> (N, C, P)."""
    n, c, h, w = maps.shape
    padded = np.zeros((n, h + 2, w + 2, c), np.float32)          # a zero ring, channels last
    padded[:, 1:-1, 1:-1] = maps.transpose(0, 2, 3, 1)
    x, y = points[..., 0], points[..., 1]
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    rows = np.arange(n)[:, None]

    def at(xi, yi):
        return padded[rows, np.clip(yi, -1, h).astype(np.intp) + 1, np.clip(xi, -1, w).astype(np.intp) + 1]
    out = ((at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx) * (1 - fy)
           + (at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx) * fy)
    return out.transpose(0, 2, 1)


class CvShapeNet:
    """The network's forward on ``cv2.dnn`` and NumPy: inputs (N, 1, S, S) float32 and the
    current shapes (N, 2P) in input px over S, centred -> the update (N, 2P)."""

    def __init__(self, state: dict, size: int, widths, local: bool):
        state = {k: np.asarray(v, np.float32) for k, v in state.items()}
        graph, self.outputs = shapenet_onnx(state, widths, tap_layers(widths, local))
        self.net = cv2.dnn.readNetFromONNX(np.frombuffer(graph, np.uint8))
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.hidden_t = np.ascontiguousarray(state["hidden.0.weight"].T)
        self.hidden_b = state["hidden.0.bias"]
        self.out_t = np.ascontiguousarray(state["out.weight"].T)
        self.out_b = state["out.bias"]
        self.local_weight = state.get("local_weight")                  # (P, C, 2) where local

    def __call__(self, images: np.ndarray, shape: np.ndarray) -> np.ndarray:
        return np.concatenate([self._forward(images[i:i + MAX_BATCH], shape[i:i + MAX_BATCH])
                               for i in range(0, len(images), MAX_BATCH)])

    def _forward(self, images: np.ndarray, shape: np.ndarray) -> np.ndarray:
        self.net.setInput(np.ascontiguousarray(images, np.float32), "input")
        *taps, last = self.net.forward(self.outputs)
        n = len(images)
        hidden = np.maximum(np.concatenate([last.reshape(n, -1), shape], 1) @ self.hidden_t + self.hidden_b, 0)
        out = hidden @ self.out_t + self.out_b
        if not taps:
            return out
        centred = shape.reshape(n, -1, 2)                    # input px over S, centred
        local = np.concatenate([sample_bilinear(t, (centred + 0.5) * t.shape[-1] - 0.5) for t in taps], 1)
        return out + np.einsum("ncp,pcd->npd", local, self.local_weight).reshape(n, -1)


@dataclass
class NetStage:
    """A network stage: input geometry, widths and weights."""

    size: int                     # input side, px
    span: float                   # crop px the input covers
    widths: tuple
    hidden: int
    state: dict                   # the torch module's state_dict, as NumPy arrays
    local: bool = False
    _net: CvShapeNet | None = field(default=None, repr=False, compare=False)

    @property
    def net(self) -> CvShapeNet:
        if self._net is None:
            self._net = CvShapeNet(self.state, self.size, self.widths, self.local)
        return self._net

    def input_target(self, mean_px: np.ndarray) -> np.ndarray:
        """The mean shape where the input frame puts it (P, 2)."""
        centre = mean_px.mean(axis=0)
        return (mean_px - centre) * (self.size / self.span) + (self.size - 1) / 2

    def inputs(self, crops, image_of, shapes, target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Network inputs (N, 1, S, S), shapes in the input frame (N, P, 2) and the (N, 2, 3)
        matrices from crop to input."""
        from tracker.geometry.alignment import alignment_matrix
        n = len(shapes)
        images = np.empty((n, 1, self.size, self.size), np.float32)
        matrices = np.empty((n, 2, 3))
        for i in range(n):
            matrices[i] = alignment_matrix(np.asarray(shapes[i], np.float64), target)
            images[i, 0] = cv2.warpAffine(crops[image_of[i]], matrices[i], (self.size, self.size),
                                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return images, transform_points(shapes, matrices), matrices

    def shape_input(self, local: np.ndarray) -> np.ndarray:
        return ((local - (self.size - 1) / 2) / self.size).reshape(len(local), -1).astype(np.float32)

    def update(self, crops, image_of, shapes, mean_centered, chunk: int = 512) -> np.ndarray:
        """``shapes`` (N, P, 2) crop px moved by the network (``chunk`` faces at a time)."""
        if len(shapes) == 0:
            return shapes
        target = self.input_target(np.asarray(mean_centered, np.float64))
        out = np.empty(np.shape(shapes), np.float32)
        for first in range(0, len(shapes), chunk):
            rows = slice(first, first + chunk)
            images, local, matrices = self.inputs(crops, image_of[rows], shapes[rows], target)
            delta = self.net(images, self.shape_input(local))
            out[rows] = transform_points(local + delta.reshape(local.shape), invert(matrices))
        return out

    def to_dict(self) -> dict:
        import torch  # written by training, where torch is there
        state = {k: torch.from_numpy(np.asarray(v, np.float16 if np.asarray(v).dtype.kind == "f" else None))
                 for k, v in self.state.items()}
        return {"kind": "net", "size": int(self.size), "span": float(self.span), "widths": list(self.widths),
                "hidden": int(self.hidden), "local": bool(self.local), "state": state}

    @classmethod
    def from_dict(cls, data: dict) -> "NetStage":
        state = {k: v.numpy() if hasattr(v, "numpy") else np.asarray(v) for k, v in data["state"].items()}
        return cls(int(data["size"]), float(data["span"]), tuple(data["widths"]), int(data["hidden"]),
                   state, bool(data.get("local", False)))
