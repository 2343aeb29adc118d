"""bin/bench rejects bad arguments at once, with one line and exit code 2."""
import pytest

from tracker.cli.bench import main as bench_main


@pytest.mark.parametrize("args, message", [
    (["--hmm-states", "0"], "--hmm-states: every value must be at least 2"),
    (["--hmm-states", "10k"], "--hmm-states: expected comma-separated integers"),
    (["--batch-sizes", "8,0"], "--batch-sizes: every value must be at least 1"),
    (["--frames", "0"], "--frames must be at least 1, got 0"),
    (["--footage", "/nonexistent/clips"], "--footage: /nonexistent/clips: no such folder"),
])
def test_bad_bench_arguments(args, message, capsys):
    assert bench_main(["--no-baseline", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err


def test_the_multi_face_option_points_to_the_footage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["--multi-face"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith("--multi-face was renamed: did you mean --footage (real clips)?")


def test_a_whole_process_is_timed_to_its_first_row_and_its_peak_memory_read(tmp_path):
    import sys

    from tracker.evaluation.bench import process_run
    csv = tmp_path / "o.csv"
    code = ("import time, sys; f = open(sys.argv[1], 'w'); f.write('h\\n'); f.flush(); time.sleep(0.3);"
            "f.write('1\\n'); f.flush(); x = bytearray(60 * 2**20); time.sleep(0.3); f.write('2\\n')")
    run = process_run([sys.executable, "-c", code, str(csv)], csv)
    assert run["returncode"] == 0 and run["rows"] == 2
    assert 0.25 < run["first_frame_s"] < run["seconds"] - 0.25
    assert run["peak_rss_mb"] > 60
    failed = process_run([sys.executable, "-c", "import sys; sys.exit('no')"], tmp_path / "none.csv")
    assert failed["returncode"] == 1 and failed["first_frame_s"] is None and "no" in failed["stderr"]


@pytest.mark.slow
def test_the_tracker_and_the_dlib_loop_run_as_processes(tmp_path):
    import pytest
    from clips import moving_face_frames, write_clip

    from tracker.evaluation.bench import dlib_command, process_run, tracker_command
    clip = write_clip(tmp_path / "m.mkv", moving_face_frames(3, step=2.0)[0])
    ours = process_run(tracker_command(clip, tmp_path / "a.csv", ("--device", "cpu")), tmp_path / "a.csv")
    assert ours["returncode"] == 0 and ours["rows"] == 3, ours["stderr"]
    try:
        import dlib  # noqa: F401
    except ImportError:
        pytest.skip("dlib is not installed")
    base = process_run(dlib_command(clip, tmp_path / "b.csv", 0), tmp_path / "b.csv")
    assert base["returncode"] == 0 and base["rows"] == 3, base["stderr"]


def test_decoding_alone_reads_every_frame_of_the_sample():
    from tracker.evaluation.bench import SAMPLE_CLIP, decode_only
    whole, part = decode_only(SAMPLE_CLIP), decode_only(SAMPLE_CLIP, max_frames=10)
    assert whole["frames"] == 472 and part["frames"] == 10 and whole["fps"] > 0


def test_a_child_s_peak_memory_is_its_own_not_that_of_the_process_that_started_it(tmp_path):
    """Linux keeps a parent's ru_maxrss in a child it starts: a small command run from a big
    process must still measure small (VmHWM), and so must this process's own peak."""
    import sys

    from tracker.evaluation.bench import peak_rss_mb, process_run, vmhwm_mb
    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"\1" * len(ballast[::4096])                     # resident, not just reserved
    code = "import time, sys; open(sys.argv[1], 'w').write('h\\n1\\n'); time.sleep(0.3)"
    run = process_run([sys.executable, "-c", code, str(tmp_path / "o.csv")], tmp_path / "o.csv")
    assert run["returncode"] == 0 and 5 < run["peak_rss_mb"] < 200
    assert peak_rss_mb() == vmhwm_mb() >= 400
    del ballast
