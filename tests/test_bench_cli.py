"""bin/bench rejects bad arguments at once, with one line and exit code 2."""
import pytest

from tracker.cli.bench import main as bench_main


@pytest.mark.parametrize("args, message", [
    (["--hmm-states", "0"], "--hmm-states: every value must be at least 2"),
    (["--hmm-states", "10k"], "--hmm-states: expected comma-separated integers"),
    (["--batch-sizes", "8,0"], "--batch-sizes: every value must be at least 1"),
    (["--frames", "0"], "--frames must be at least 1, got 0"),
])
def test_bad_bench_arguments(args, message, capsys):
    assert bench_main(["--no-baseline", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "Traceback" not in err
