"""The paper venue run over a live recording: what the public market shows it."""

from __future__ import annotations

from typing import Any

from mm_daemon.core.queue import QueueProbability
from mm_daemon.venues.paper_calibration import (
    counterfactual,
    fit,
    not_exposed_error,
    recording_from_rows,
    score,
    unseen_fills,
)
from tests.support import RECORDING_INSTRUMENT

MS = 1_000_000


def front_of_the_queue(*, behind_lots: int) -> list[dict[str, Any]]:
    """Our 20-lot bid improves the book to 99.99 (the public bids are at 99.98); `behind_lots`
    of others join it; a 20-lot sell then prints at 99.99 and fills our bid in full (its trade
    is on the public stream too, as the venue printed it). The public book never shows our
    bid past the mid."""
    rows: list[dict[str, Any]] = [{"k": "meta", "instrument": RECORDING_INSTRUMENT}]
    rows.append({"k": "book", "t": 0, "e": 0, "snap": True, "b": [[9998, 50]], "a": [[10001, 50]]})
    rows.append({"k": "place", "t": 100 * MS, "id": "b0", "s": 1, "p": 9999, "q": 20})
    rested = 101 * MS
    opened = {"k": "upd", "t": rested, "e": rested, "id": "b0", "s": 1, "p": 9999}
    rows.append({**opened, "st": "open", "q": 20, "f": 0})
    # The venue's book: ours and the joiners' at 99.99.
    joined = {"k": "book", "t": 200 * MS, "e": 200 * MS, "snap": False}
    rows.append({**joined, "b": [[9999, 20 + behind_lots]], "a": []})
    at = 300 * MS
    rows.append({"k": "trade", "t": at, "e": at, "id": 77, "p": 9999, "q": 20, "s": -1})
    fill = {"k": "fill", "t": at, "e": at, "id": "b0", "tid": 77, "s": 1, "p": 9999, "q": 20}
    rows.append(fill)
    rows.append({**opened, "t": at, "e": at, "st": "filled", "q": 20, "f": 20})
    after = {"k": "book", "t": 400 * MS, "e": 400 * MS, "snap": False, "a": []}
    rows.append({**after, "b": [[9999, behind_lots]]})
    rows.append({**after, "t": 2_000 * MS, "e": 2_000 * MS, "b": [[9999, behind_lots]]})
    return rows


def test_an_order_at_the_front_that_live_filled_fills_on_paper_from_its_own_print() -> None:
    # Without our bid, the sell would have traded with the orders behind it at 99.99: the
    # print stays in the public market and the paper bid, first in the queue, takes it.
    recording = recording_from_rows(front_of_the_queue(behind_lots=30), "front")
    (order,) = recording.orders
    assert order.live_filled_lots == 20
    assert order.max_depth_bps <= 0.0
    outcome = counterfactual(recording, QueueProbability(), None)
    assert outcome.filled["b0"] == (1, 20)
    _, buckets = score([recording], QueueProbability(), None)
    assert not_exposed_error(buckets) < 1e-9


def test_our_own_print_is_not_counted_as_one_the_public_showed_at_our_price() -> None:
    recording = recording_from_rows(front_of_the_queue(behind_lots=30), "front")
    assert recording.own_trade_ids == frozenset({"77"})
    seen = unseen_fills(recording)
    # The only print at 99.99 in the fill's window is the fill itself.
    assert (seen.print_through, seen.print_at, seen.no_print) == (0, 0, 1)


def queue_thinned(episodes: list[bool]) -> list[dict[str, Any]]:
    """One 20-lot bid per second behind 40 lots at 99.99; 40 lots join behind it, then 40 lots
    leave, then a 20-lot sell prints at 99.99. The public stream is the same every time; live,
    the bid fills when the 40 that left were ahead of it (`True`) and is cancelled unfilled when
    they were the ones behind it (`False`)."""
    rows: list[dict[str, Any]] = [{"k": "meta", "instrument": RECORDING_INSTRUMENT}]
    rows.append({"k": "book", "t": 0, "e": 0, "snap": True, "b": [[9999, 40]], "a": [[10001, 50]]})

    def book(t: int, size: int) -> dict[str, Any]:
        return {"k": "book", "t": t, "e": t, "snap": False, "b": [[9999, size]], "a": []}

    for i, ahead_left in enumerate(episodes):
        start, oid = (i + 1) * 1_000 * MS, f"b{i}"
        rows.append({"k": "place", "t": start, "id": oid, "s": 1, "p": 9999, "q": 20})
        opened = {"k": "upd", "t": start + MS, "e": start + MS, "id": oid, "s": 1, "p": 9999}
        rows.append({**opened, "st": "open", "q": 20, "f": 0})
        rows.append(book(start + 100 * MS, 100))  # 40 ahead, ours, 40 behind
        rows.append(book(start + 200 * MS, 60))  # 40 of them left
        at = start + 300 * MS
        printed = {"t": at, "e": at, "p": 9999, "q": 20}
        rows.append({"k": "trade", "id": 1_000 + i, "s": -1, **printed})
        if ahead_left:
            rows.append({"k": "fill", "id": oid, "tid": 1_000 + i, "s": 1, **printed})
            rows.append({**opened, "t": at, "e": at, "st": "filled", "q": 20, "f": 20})
            rows.append(book(start + 400 * MS, 40))  # the 40 behind us
        else:
            rows.append(book(start + 400 * MS, 40))  # 20 ahead, ours
            rows.append({"k": "cancel", "t": start + 500 * MS, "id": oid})
            gone = start + 501 * MS
            rows.append({**opened, "t": gone, "e": gone, "st": "cancelled", "q": 20, "f": 0})
            rows.append(book(start + 600 * MS, 20))
        rows.append(book(start + 900 * MS, 40))  # the level as the next episode finds it
    return rows


def test_the_queue_split_is_chosen_on_each_recording_not_on_their_sum() -> None:
    # One market where, three times, what left was ahead; another where it was behind.
    # Counting every departure as ahead books all four bids: pooled, 4 fills against live's 3,
    # nearly right; per recording, a fill where live had none. Counting none books none.
    ahead_left = recording_from_rows(queue_thinned([True, True, True]), "ahead left")
    behind_left = recording_from_rows(queue_thinned([False]), "behind left")
    splits = {
        "all ahead": QueueProbability("fixed", fixed_share_ahead=1.0),
        "none ahead": QueueProbability("fixed", fixed_share_ahead=0.0),
    }
    alone = fit([ahead_left], probabilities=splits, seeds=(1,), iterations=2)
    assert alone.probability == splits["all ahead"]
    both = fit([ahead_left, behind_left], probabilities=splits, seeds=(1,), iterations=2)
    assert both.probability == splits["none ahead"]
    assert both.probability_scores["none ahead"] < both.probability_scores["all ahead"]
    # What each split books of the four bids.
    filled = {
        name: sum(len(counterfactual(rec, split, None).filled) for rec in (ahead_left, behind_left))
        for name, split in splits.items()
    }
    assert filled == {"all ahead": 4, "none ahead": 0}
