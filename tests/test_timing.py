"""The one stage-timing context manager (tracker/timing.py)."""
import threading
import time

import pytest

from tracker.timing import StageTimes, timed


def test_a_timed_block_adds_its_seconds_and_count():
    times = StageTimes()
    with timed(times, "classify", 3):
        time.sleep(0.02)
    with timed(times, "classify", 2):
        pass
    with timed(times, "detect"):
        pass
    assert times.counts == {"classify": 5, "detect": 1}
    assert 0.02 <= times.seconds["classify"] < 1.0
    assert 0.0 <= times.seconds["detect"] < times.seconds["classify"]


def test_the_count_can_be_set_inside_the_block():
    times = StageTimes()
    with timed(times, "crop") as step:
        step.count = 7
    with timed(times, "crop") as step:
        step.count = 0             # nothing done: seconds still count, the count does not
    assert times.counts["crop"] == 7


def test_a_block_that_raises_records_nothing_and_the_error_goes_on():
    times = StageTimes()
    with pytest.raises(ValueError, match="no scan"):
        with timed(times, "detect_wait"):
            raise ValueError("no scan")
    assert "detect_wait" not in times.seconds and "detect_wait" not in times.counts


def test_without_times_nothing_is_recorded_and_the_block_runs():
    ran = []
    with timed(None, "decode") as step:
        ran.append(step.count)
    assert ran == [1]


def test_stage_times_add_up_from_several_threads():
    times = StageTimes()

    def add() -> None:
        for _ in range(2000):
            with timed(times, "temporal"):
                pass

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert times.counts["temporal"] == 8000
