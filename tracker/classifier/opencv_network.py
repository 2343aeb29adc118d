"""The pose classifier on OpenCV's DNN module: CPU inference without torch.

The network's weights (a torchvision ResNet backbone, its embedding layer and the K-way
head, as :class:`tracker.classifier.model.PoseClassifier` holds them) are written as an ONNX graph in
memory (:mod:`tracker.classifier.onnx`), batch norms folded into the convolutions, and read by
``cv2.dnn``. The K-way head is a NumPy product on the embedding: inside ``cv2.dnn`` its
weights would be held twice (as read and as repacked on the first forward), 25 MB more at
the packaged K. The input is the classifier's own: crops (N, S, S, 3) uint8 BGR, normalised
here as the torch model normalises them.
"""
from __future__ import annotations

import numpy as np

from tracker.classifier import onnx

BN_EPS = 1e-5
MAX_BATCH = 8            # crops per cv2.dnn forward (multi-face clip: peak 414 -> 391 MB, the same fps)


def _fold(state: dict, conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of convolution ``conv`` followed by batch norm ``bn`` (eval mode)."""
    w = np.asarray(state[f"{conv}.weight"], np.float32)
    gamma, beta = state[f"{bn}.weight"].astype(np.float64), state[f"{bn}.bias"].astype(np.float64)
    mean, var = state[f"{bn}.running_mean"].astype(np.float64), state[f"{bn}.running_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + BN_EPS)        # per channel in float64; the weights scaled in float32
    return w * scale.astype(np.float32)[:, None, None, None], (beta - mean * scale).astype(np.float32)


class _Graph:
    def __init__(self):
        self.nodes, self.weights, self._n = [], [], 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, stem: str, array: np.ndarray) -> str:
        name = self.name(stem)
        self.weights.append(onnx.tensor(name, array))
        return name

    def op(self, op: str, inputs, stem: str = "", **attrs) -> str:
        out = self.name(stem or op.lower())
        self.nodes.append(onnx.node(op, inputs, [out], **attrs))
        return out

    def conv_bn(self, x: str, state: dict, conv: str, bn: str, relu: bool) -> str:
        w, b = _fold(state, conv, bn)
        k = w.shape[2]
        stride = _stride(state, conv)
        y = self.op("Conv", [x, self.const(conv + ".w", w), self.const(conv + ".b", b)], conv,
                    kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)
        return self.op("Relu", [y]) if relu else y


def _stride(state: dict, conv: str) -> int:
    """The stride of a torchvision ResNet convolution, from where it sits (weights do not
    hold it): 2 for the stem, and in the first block of layer2-4 for the downsampling
    shortcut and the block's strided convolution (conv1 of a basic block, conv2 of a
    bottleneck); else 1."""
    parts = conv.split(".")
    if parts == ["conv1"]:
        return 2
    layer, block, what = parts[0], parts[1], parts[2]
    if block != "0" or layer == "layer1":
        return 1
    if what == "downsample":
        return 2
    bottleneck = f"{layer}.{block}.conv3.weight" in state
    return 2 if what == ("conv2" if bottleneck else "conv1") else 1


def resnet_onnx(state: dict, prefix: str = "backbone.", head: str | None = "head.") -> bytes:
    """ONNX bytes of a torchvision ResNet (``prefix``-ed keys of the numpy ``state``) and the
    linear ``head`` after it: input ``input`` (N, 3, S, S) normalised float, outputs
    ``embedding`` (the backbone's fc output) and ``scores`` (the head's)."""
    s = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    g = _Graph()
    x = g.conv_bn("input", s, "conv1", "bn1", relu=True)
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        block = 0
        while f"{layer}.{block}.conv1.weight" in s:
            name = f"{layer}.{block}"
            convs = [i for i in (1, 2, 3) if f"{name}.conv{i}.weight" in s]
            y = x
            for i in convs:
                y = g.conv_bn(y, s, f"{name}.conv{i}", f"{name}.bn{i}", relu=i != convs[-1])
            shortcut = x
            if f"{name}.downsample.0.weight" in s:
                shortcut = g.conv_bn(x, s, f"{name}.downsample.0", f"{name}.downsample.1", relu=False)
            x = g.op("Relu", [g.op("Add", [y, shortcut])])
            block += 1
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x], axis=1)
    embedding = g.op("Gemm", [x, g.const("fc.w", s["fc.weight"]), g.const("fc.b", s["fc.bias"])], "embedding",
                     transB=1)
    outputs = [onnx.value_info(embedding, ["n", int(s["fc.weight"].shape[0])])]
    if head is not None:
        hw, hb = state[f"{head}weight"], state[f"{head}bias"]
        scores = g.op("Gemm", [embedding, g.const("head.w", hw), g.const("head.b", hb)], "scores", transB=1)
        outputs.append(onnx.value_info(scores, ["n", int(hw.shape[0])]))
    inputs = [onnx.value_info("input", ["n", 3, "s", "s"])]           # any batch, any square crop size
    return onnx.model(g.nodes, g.weights, inputs, outputs, name="pose_classifier")


class CvClassifier:
    """Crops (N, S, S, 3) uint8 BGR -> scores (N, K), and embeddings, on ``cv2.dnn``
    (NumPy arrays in and out)."""

    backend = "opencv"

    def __init__(self, state: dict, mean_bgr, std_bgr):
        import cv2
        self.net = cv2.dnn.readNetFromONNX(np.frombuffer(resnet_onnx(state, head=None), np.uint8))
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.net.enableWinograd(False)
        self._output = self.net.getUnconnectedOutLayersNames()[0]            # the embedding layer
        self.head_t = np.ascontiguousarray(np.asarray(state["head.weight"], np.float32).T)   # (E, K)
        self.head_bias = np.asarray(state["head.bias"], np.float32).copy()
        self.mean = np.asarray(mean_bgr, np.float32).reshape(1, 3, 1, 1) * 255
        self.inv_std = 1 / (np.asarray(std_bgr, np.float32).reshape(1, 3, 1, 1) * 255)
        self._input = np.empty(0, np.float32)     # the normalised batch, reused while its shape stays

    def _normalised(self, crops: np.ndarray) -> np.ndarray:
        shape = (crops.shape[0], 3, crops.shape[1], crops.shape[2])
        if self._input.shape != shape:
            self._input = np.empty(shape, np.float32)
        np.subtract(crops.transpose(0, 3, 1, 2), self.mean, out=self._input)
        self._input *= self.inv_std
        return self._input

    def _run(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # At most MAX_BATCH crops per forward: cv2.dnn sizes every layer's buffer for the
        # batch it is given, and keeps it
        parts = [self._embedding(crops[i:i + MAX_BATCH]) for i in range(0, len(crops), MAX_BATCH)]
        embedding = np.concatenate(parts) if len(parts) != 1 else parts[0]
        return embedding, embedding @ self.head_t + self.head_bias

    def _embedding(self, crops: np.ndarray) -> np.ndarray:
        x = self._normalised(crops)
        self.net.setInput(x, "input")
        return self.net.forward(self._output).reshape(len(x), -1)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        return self._run(crops)[1]

    def embed(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._run(crops)
