"""tickwork._grid: the one computation of the drift-free grid ``anchor + k * period``."""

from unittest import mock

import pytest

from tickwork import _grid
from tickwork.fixture import FakeClock


@pytest.mark.parametrize(("now", "expected"), [
    (5, (110, 0)),      # before the first slot: still the first slot
    (110, (110, 0)),    # on the first slot
    (115, (110, 0)),    # within it
    (120, (120, 1)),    # the second slot: the first was skipped
    (135, (130, 2)),
    (100 + 10 * 1000 + 3, (10100, 999)),
])
def test_current_slot_is_the_latest_slot_not_after_now(now, expected):
    assert _grid.current_slot(100, 10, now) == expected


@pytest.mark.parametrize(("now", "expected"), [
    (5, (110, 0)),
    (110, (110, 0)),    # a slot falling due right now is still ahead
    (110.5, (120, 1)),
    (120, (120, 1)),
    (129.99, (130, 2)),
])
def test_next_slot_is_the_first_slot_at_or_after_now(now, expected):
    assert _grid.next_slot(100, 10, now) == expected


def test_next_slot_counts_a_slot_reached_up_to_float_rounding_as_ahead():
    # 0.1 * 3 is 0.30000000000000004: the slot at 0.3 is due "now", not passed.
    assert _grid.next_slot(0.0, 0.1, 0.1 * 3) == (pytest.approx(0.3), 2)


def test_slots_stay_on_the_grid_whatever_the_lateness():
    anchor, period = 1000.0, 7.0
    for now in (1007.0, 1013.9, 1500.25, 99999.0):
        slot, skipped = _grid.current_slot(anchor, period, now)
        assert (slot - anchor) % period == 0 and slot <= now < slot + period
        assert skipped == (slot - anchor) / period - 1
        ahead, ahead_skipped = _grid.next_slot(anchor, period, now)
        assert (ahead - anchor) % period == 0 and now <= ahead < now + period
        assert ahead_skipped == (ahead - anchor) / period - 1


def test_slots_since_is_signed():
    assert _grid.slots_since(10, 7, 19) == 1
    assert _grid.slots_since(10, 7, 1841) == 261
    assert _grid.slots_since(10, 7, 3) == -1


def test_jitter_is_up_to_five_percent_in_whole_seconds():
    assert _grid.jitter(200, 1.0) == 10
    assert _grid.jitter(200, 0.5) == 5
    assert _grid.jitter(200, 0.0) == 0
    assert _grid.jitter(19.9, 1.0) == 0     # under 20 s: none
    assert _grid.jitter(20, 1.0) == 1


def test_draw_reads_random_random_on_the_real_clock_and_the_rng_under_a_fake_one():
    with mock.patch("random.random", return_value=0.25):
        assert _grid.draw() == 0.25
    with FakeClock(seed=3), mock.patch("random.random", return_value=0.25):
        first = [_grid.draw() for _ in range(3)]
    with FakeClock(seed=3):
        assert [_grid.draw() for _ in range(3)] == first != [0.25] * 3
