"""The pose classifier: the torch network, its OpenCV runtime, and reading model files."""
