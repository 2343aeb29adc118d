"""Process-wide settings the tracker makes on purpose: NumPy's BLAS threads and how the C
heap serves frame-sized buffers. Both are measured on the bundled sample (2-core CPU,
``facetrack bench``); each is a no-op where the library it tunes is not there."""
from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3              # glibc's mallopt parameter
MMAP_THRESHOLD = 256 * 1024        # bytes; a 640x360 BGR frame is 691,200


def map_large_allocations() -> bool:
    """Buffers of 256 KB and more (frames, crops, network blobs) come straight from the
    system and go back to it when freed. glibc's default threshold grows to the size of
    the largest buffer freed, after which frames are carved from a heap that fragments:
    on the sample peak memory 416 -> 388 MB (queue of 8 frames). Call it before the model
    is loaded; returns whether it was set (glibc only)."""
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


def single_threaded_blas() -> bool:
    """NumPy's OpenBLAS (and any other library's own copy) on one thread. Its products here
    are small (the K-way head on the OpenCV backend: 1 ms for 8 crops on one thread), and
    its idle threads spin beside the decode thread: on 2 cores the sample ran at 50.7 fps
    with them, 73.4 without. Linux only (the libraries are found among the process's
    mappings); returns whether one was set."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
    except OSError:
        return False
    done = False
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(1)
                done = True
                break
    return done
