import numpy as np

from tracker.io.draw import annotate, face_colour


def test_annotate_draws_in_the_face_colour_near_the_landmarks(face):
    image = np.zeros((360, 640, 3), np.uint8)
    annotate(image, 1, face, 0.9)
    drawn = image.any(axis=2)
    ys, xs = np.nonzero(drawn)
    x0, y0 = face.min(0) - 30
    x1, y1 = face.max(0) + 10
    assert drawn.sum() > 500
    assert xs.min() >= x0 and xs.max() <= x1 and ys.min() >= y0 and ys.max() <= y1
    x, y = np.round(face[30]).astype(int)      # nose tip pixel carries face 1's colour
    assert tuple(image[y, x]) == face_colour(1)
    assert face_colour(0) != face_colour(1)
