"""Numba kernels (max-product decoding and friends); each tested against a NumPy reference."""
