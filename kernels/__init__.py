"""Numba kernels, one module per concept (hmm: max-product decoding; knn: neighbour
search; select: quickselect), each tested against a slow NumPy reference in tests/."""
import os

import numba

# Numba's default OpenMP threading layer shares libgomp with torch, and its first parallel
# launch resets torch's thread count (measured: 1 -> 2, which on 2 cores starves the decode
# thread). Numba's own workqueue layer leaves torch alone; an explicit choice still wins.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"
