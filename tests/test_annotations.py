import json

import numpy as np
import pytest

from tracker.errors import AnnotationError
from tracker.io import annotations as ann


def _pts_text(points, header=True):
    body = "\n".join(f"{x} {y}" for x, y in points)
    return f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n" if header else body + "\n"


@pytest.fixture
def points():
    rng = np.random.default_rng(0)
    return rng.uniform(10, 200, size=(68, 2)).round(3)


@pytest.mark.parametrize("header", [True, False])
def test_read_pts_converts_to_zero_based(tmp_path, points, header):
    path = tmp_path / "a.pts"
    path.write_text(_pts_text(points, header))
    np.testing.assert_allclose(ann.read_pts(path), points - 1)


def test_write_then_read_round_trip(tmp_path, points):
    ann.write_pts(tmp_path / "b.pts", points)
    np.testing.assert_allclose(ann.read_pts(tmp_path / "b.pts"), points, atol=1e-4)
    assert (tmp_path / "b.pts").read_text().startswith("version: 1\nn_points: 68\n{\n")


def test_shared_pts_file(shared_data):
    pts = ann.read_pts(shared_data / "300w-subset" / "afw" / "134212_1.pts")
    assert pts.shape == (68, 2)
    assert pts[0] == pytest.approx([70.5173, 93.3578])


def _bad_files(points):
    good = _pts_text(points).splitlines()
    return {
        "wrong count": (_pts_text(points[:67], header=False), "expected 68 points, found 67"),
        "header says 68, has 67": ("\n".join(good[:3] + good[3:70] + ["}"]), "header says 68 points, found 67"),
        "header mismatch": ("\n".join(["version: 1", "n_points: 66"] + good[2:]), "header says 66"),
        "non-numeric": ("\n".join(good[:10] + ["12.0 abc"] + good[11:]), "non-numeric"),
        "truncated": ("\n".join(good[:40]), "truncated"),
        "three values": ("\n".join(good[:5] + ["1 2 3"] + good[6:]), "expected 'x y'"),
        "nan": ("\n".join(good[:5] + ["nan 2"] + good[6:]), "non-finite"),
    }


@pytest.mark.parametrize("case", ["wrong count", "header says 68, has 67", "header mismatch", "non-numeric", "truncated", "three values", "nan"])
def test_bad_pts_raise_one_typed_error_with_file_and_line(tmp_path, points, case):
    text, message = _bad_files(points)[case]
    path = tmp_path / "bad.pts"
    path.write_text(text)
    with pytest.raises(AnnotationError, match=message) as info:
        ann.read_pts(path)
    assert str(path) in str(info.value)
    assert info.value.line is not None
    if case == "non-numeric":
        assert info.value.line == 11


def test_missing_pts_is_an_annotation_error(tmp_path):
    with pytest.raises(AnnotationError, match="no such file"):
        ann.read_pts(tmp_path / "nope.pts")


def test_300vw_folder(tmp_path, points):
    (tmp_path / "annot").mkdir()
    (tmp_path / "vid.avi").write_bytes(b"")
    for n in (1, 2, 5):
        (tmp_path / "annot" / f"{n:06d}.pts").write_text(_pts_text(points + n))
    seq = ann.read_300vw(tmp_path)
    assert seq.frames == [1, 2, 5]
    assert seq.video.name == "vid.avi"
    np.testing.assert_allclose(seq.landmarks[5], points + 4)


def test_300vw_rejects_non_numeric_names(tmp_path, points):
    (tmp_path / "annot").mkdir()
    (tmp_path / "annot" / "first.pts").write_text(_pts_text(points))
    with pytest.raises(AnnotationError, match="1-based frame numbers"):
        ann.read_300vw(tmp_path)


def test_bundled_sample_is_a_300vw_sequence(sample_clip):
    seq = ann.read_300vw(sample_clip)
    assert seq.video.name == "vid.mp4" and seq.frames[0] == 1 and len(seq.frames) == 472


def test_ljson_swaps_yx(tmp_path, points):
    yx = points[:, ::-1].tolist()
    (tmp_path / "a.ljson").write_text(json.dumps({"landmarks": {"points": yx}, "labels": []}))
    np.testing.assert_allclose(ann.read_ljson(tmp_path / "a.ljson"), points)
    grouped = {"groups": {"PTS": {"landmarks": {"points": yx}}}}
    (tmp_path / "b.ljson").write_text(json.dumps(grouped))
    np.testing.assert_allclose(ann.read_ljson(tmp_path / "b.ljson"), points)


@pytest.mark.parametrize("content,message", [
    ("{not json", "invalid JSON"),
    (json.dumps({"landmarks": {"points": [[1, 2]] * 10}}), "expected 68 points"),
    (json.dumps({"something": 1}), "no 68-point"),
])
def test_bad_ljson(tmp_path, content, message):
    (tmp_path / "bad.ljson").write_text(content)
    with pytest.raises(AnnotationError, match=message):
        ann.read_ljson(tmp_path / "bad.ljson")


def _dlib_xml(points, n_parts=68):
    parts = "".join(f"<part name='{i:02d}' x='{int(x)}' y='{int(y)}'/>" for i, (x, y) in enumerate(points[:n_parts]))
    return ("<?xml version='1.0'?><dataset><images>"
            f"<image file='img/a.jpg'><box top='10' left='20' width='100' height='110'>{parts}</box>"
            "<box top='1' left='2' width='3' height='4'/></image></images></dataset>")


def test_dlib_xml(tmp_path, points):
    (tmp_path / "train.xml").write_text(_dlib_xml(points))
    [sample] = ann.read_dlib_xml(tmp_path / "train.xml")
    assert sample.image == tmp_path / "img" / "a.jpg"
    np.testing.assert_allclose(sample.boxes, [[20, 10, 120, 120], [2, 1, 5, 5]])
    np.testing.assert_allclose(sample.landmarks[0], points.astype(int))
    assert sample.landmarks[1] is None


def test_dlib_xml_with_missing_parts(tmp_path, points):
    (tmp_path / "train.xml").write_text(_dlib_xml(points, n_parts=60))
    with pytest.raises(AnnotationError, match="60 parts"):
        ann.read_dlib_xml(tmp_path / "train.xml")


def test_dlib_xml_truncated(tmp_path, points):
    (tmp_path / "train.xml").write_text(_dlib_xml(points)[:200])
    with pytest.raises(AnnotationError, match="invalid XML"):
        ann.read_dlib_xml(tmp_path / "train.xml")
