import numpy as np
import pytest

from tracker.io.landmark_csv import HEADER, CsvFormatError, LandmarkCsvWriter, read_landmark_csv


def test_header_is_openface_layout():
    assert HEADER[:5] == ["frame", "face_id", "timestamp", "confidence", "success"]
    assert HEADER[5] == "x_0" and HEADER[72] == "x_67" and HEADER[73] == "y_0" and HEADER[-1] == "y_67"


def test_round_trip_with_empty_frame_and_file_column(tmp_path, face):
    path = tmp_path / "out.csv"
    with LandmarkCsvWriter(path, extra_columns=("file",)) as sink:
        sink.write(1, 0, 0.0, 0.91, face, {"file": "a.jpg"})
        sink.write(2, -1, 0.0417, 0.0, None, {"file": "b.jpg"})
    text = path.read_text().splitlines()
    assert text[0].startswith("frame,face_id,timestamp,confidence,success,x_0,") and text[0].endswith(",y_67,file")
    assert " " not in text[1]
    rows = read_landmark_csv(path)
    assert [r.frame for r in rows] == [1, 2]
    assert rows[0].success and not rows[1].success and rows[1].points is None
    np.testing.assert_allclose(rows[0].points, face, atol=0.005)
    assert rows[1].extras["file"] == "b.jpg" and rows[1].timestamp == pytest.approx(0.0417)


def test_rows_are_on_disk_before_close(tmp_path, face):
    path = tmp_path / "out.csv"
    sink = LandmarkCsvWriter(path).__enter__()
    sink.write(1, 0, 0.0, 0.5, face)
    assert len(read_landmark_csv(path)) == 1     # flushed, readable while still open
    sink.close()


@pytest.mark.parametrize("content,message", [
    ("", "empty file"),
    ("a,b,c\n1,2,3\n", "missing column 'frame'"),
    (",".join(HEADER) + "\n1,0,0.0,1\n", "truncated row"),
    (",".join(HEADER) + "\n1,0,0.0,1,1," + ",".join(["x"] * 136) + "\n", "non-numeric"),
])
def test_bad_csv(tmp_path, content, message):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(CsvFormatError, match=message):
        read_landmark_csv(tmp_path / "bad.csv")


def test_unwritable_path_is_a_clear_error(tmp_path):
    from tracker.errors import FacetrackError
    with pytest.raises(FacetrackError, match="cannot write"):
        with LandmarkCsvWriter(tmp_path / "no" / "such" / "dir.csv"):
            pass
