"""Fitting where within a book update's window the market crossed a quote."""

from __future__ import annotations

import math
import random

from mm_daemon.core.instruments import BTC_USDT_SPOT
from mm_daemon.venues.paper_calibration import Recording, fit_onset_shape


def recording(arrivals: list[tuple[float, bool]]) -> Recording:
    return Recording(
        "synthetic", BTC_USDT_SPOT, (), (), 0, 0, 0, 0, 0, 0, crossed_arrivals=tuple(arrivals)
    )


def drawn(shape: float, n: int, seed: int) -> list[tuple[float, bool]]:
    """Orders arriving uniformly in their window, refused when the crossing (drawn with the
    shape) came before them."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        into = rng.random()
        crossing = 1.0 - math.pow(1.0 - rng.random(), 1.0 / shape)
        out.append((into, crossing < into))
    return out


def test_the_fit_recovers_the_shape_the_refusals_were_drawn_with() -> None:
    for shape in (0.5, 1.0, 2.0, 4.0):
        fitted = fit_onset_shape([recording(drawn(shape, 4_000, seed=int(shape * 10)))])
        assert abs(math.log(fitted.shape / shape)) < 0.15, (shape, fitted.shape)
        assert fitted.orders == 4_000
        assert fitted.log_likelihood >= fitted.log_likelihood_uniform


def test_refusals_late_in_the_window_mean_an_early_crossing() -> None:
    # Refused only in the last fifth of the window, every time: the crossing comes late.
    late = [(k / 100, k >= 80) for k in range(100)] * 10
    # Refused from a fifth of the window on: the crossing comes early.
    early = [(k / 100, k >= 20) for k in range(100)] * 10
    late_shape = fit_onset_shape([recording(late)]).shape
    assert late_shape < 1.0 < fit_onset_shape([recording(early)]).shape


def test_the_fit_reports_each_fifth_of_the_window() -> None:
    arrivals = [(0.1, False), (0.1, True), (0.5, True), (0.95, True), (1.0, True)]
    fitted = fit_onset_shape([recording(arrivals)])
    assert [(orders, refused) for orders, refused, _ in fitted.by_fifth] == [
        (2, 1),
        (0, 0),
        (1, 1),
        (0, 0),
        (2, 2),
    ]
    predicted = [p for _, _, p in fitted.by_fifth]
    assert predicted[0] < predicted[2] < predicted[4] <= 1.0


def test_no_crossed_arrival_leaves_the_uniform_shape() -> None:
    assert fit_onset_shape([recording([])]).shape == 1.0


def test_a_recording_gives_each_crossed_post_only_order_its_place_in_the_window() -> None:
    from mm_daemon.venues.paper_calibration import recording_from_rows  # noqa: PLC0415

    ms, s = 1_000_000, 1_000_000_000
    instrument = {"venue": "sim-spot", "symbol": "X/USDT", "exchange_symbol": "XUSDT",
                  "kind": "spot", "base": "X", "quote": "USDT", "tick_size": 0.01,
                  "lot_size": 0.001}  # fmt: skip
    rows: list[dict[str, object]] = [{"k": "meta", "instrument": instrument}]
    # Updates every 100 ms at 100.00 / 100.02; in second k the update at k s + 500 ms shows the
    # ask down at 100.01, through our bid there, and the one after shows it back.
    for n in range(100):
        t = n * 100 * ms
        ask = 10001 if n % 10 == 5 else 10002
        rows.append({"k": "book", "t": t, "e": t, "snap": True, "b": [[10000, 5]], "a": [[ask, 5]]})
    # Bids at 100.01 sent 10, 50 and 90 ms into the window before that update: the venue
    # refused the last two; one at 100.00 (never crossed) rests.
    for k, (into_ms, price, refused) in enumerate(
        [(10, 10001, False), (50, 10001, True), (90, 10001, True), (50, 10000, False)]
    ):
        sent = (k + 1) * s + 400 * ms + into_ms * ms - ms  # arrives 1 ms later
        oid = f"b{k}"
        rows.append({"k": "place", "t": sent, "id": oid, "s": 1, "p": price, "q": 5})
        state = "rejected" if refused else "open"
        rows.append({"k": "upd", "t": sent + 2 * ms, "e": sent + ms, "id": oid, "s": 1,
                     "p": price, "st": state, "q": 5, "f": 0})  # fmt: skip
    recording = recording_from_rows(rows, "r")
    assert recording.entry_latency_ns == ms
    got = [(round(x, 2), refused) for x, refused in recording.crossed_arrivals]
    assert sorted(got) == [(0.1, False), (0.5, True), (0.9, True)]
