"""Quickselect, shared by the k-d tree build (:mod:`kernels.knn`) and the HMM's top-M
pruning (:mod:`kernels.hmm`).

Numba's cache keys a compiled function on its own file only: after editing this one,
delete ``kernels/__pycache__`` so that the cached callers in the other modules recompile.
"""
from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def nth_element(keys, items, lo, hi, k):
    """Quickselect on keys[lo:hi] (``items`` move along): afterwards keys[k] is the value
    a sort would put there, with nothing larger before it and nothing smaller after it.
    (Hand-written: Numba's np.partition / np.argsort cost seconds to compile.)"""
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        a, b, c = keys[lo], keys[mid], keys[hi - 1]          # median of three as pivot
        pivot = max(min(a, b), min(max(a, b), c))
        i, j = lo, hi - 1
        while i <= j:                                       # Hoare partition
            while keys[i] < pivot:
                i += 1
            while keys[j] > pivot:
                j -= 1
            if i <= j:
                keys[i], keys[j] = keys[j], keys[i]
                items[i], items[j] = items[j], items[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j + 1
        elif k >= i:
            lo = i
        else:
            return
