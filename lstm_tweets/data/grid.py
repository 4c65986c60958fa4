"""Bars laid out as a sessions x slots grid, for statistics "at the same time of day".

Row r is the r-th XNYS regular session that has bars in the file (in time order; sessions without
any bar are skipped, so "the previous 20 sessions" means the previous 20 sessions of the data);
slot k is the bar that starts k bar lengths after that session's open. A bar that does not lie
wholly inside a session, or does not start on that grid, is left out. Missing bars are NaN.

Window sums over slots come from cumulative sums along the slots, so that a statistic for every
tweet is a handful of array lookups, never a Python loop per tweet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_tweets.data.prices import PriceBars

# volume_ratio: the median over the previous LOOKBACK sessions with bars, of which at least
# MIN_SESSIONS must have every slot of the window.
LOOKBACK_SESSIONS = 20
MIN_SESSIONS = 10
# Why a labeled tweet has no volume_ratio (NaN), in the order they are checked.
VOLUME_REASONS = ("no_volume_column", "empty_window", "volume_gap", "no_volume_history")


@dataclass
class SessionGrid:
    opens: np.ndarray  # (S,) open of each row's session, UTC ns
    closes: np.ndarray  # (S,) its close
    bar_ns: int
    close: np.ndarray  # (S, K) close price per slot, NaN where the bar is missing
    volume: np.ndarray | None  # (S, K) volume per slot (None: the file has no volume column)
    row_of_bar: np.ndarray  # (n_bars,) row of each bar of the file, -1 when off the grid
    slot_of_bar: np.ndarray  # (n_bars,) its slot (meaningless where row_of_bar is -1)

    @property
    def n_slots(self) -> int:
        return self.close.shape[1]

    def row_of(self, instants: np.ndarray) -> np.ndarray:
        """Row of the session that holds each instant (open <= t < close), -1 when none does."""
        row = np.searchsorted(self.opens, instants, side="right") - 1
        safe = np.maximum(row, 0)
        inside = (row >= 0) & (instants >= self.opens[safe]) & (instants < self.closes[safe])
        return np.where(inside, row, -1)

    def containing_slot(self, rows: np.ndarray, instants: np.ndarray) -> np.ndarray:
        """Slot of the bar that contains each instant, by the labeler's rule (a bar covers
        [start, start + bar]; an instant on a boundary belongs to the bar that ends there, and the
        open to the first bar)."""
        since_open = instants - self.opens[np.maximum(rows, 0)]
        return np.maximum(-(-since_open // self.bar_ns) - 1, 0)


def session_grid(prices: PriceBars, opens_ns: np.ndarray, closes_ns: np.ndarray) -> SessionGrid:
    """Lay the bars on the grid of the given sessions (from `labels.sessions_covering`)."""
    starts = prices.starts_ns
    bar_ns = int(round(prices.bar_minutes * 60_000_000_000))
    session = np.searchsorted(opens_ns, starts, side="right") - 1
    safe = np.maximum(session, 0)
    since_open = starts - opens_ns[safe]
    on_grid = (
        (session >= 0)
        & (since_open >= 0)
        & (starts + bar_ns <= closes_ns[safe])
        & (since_open % bar_ns == 0)
    )
    used, rows = np.unique(session[on_grid], return_inverse=True)
    n_slots = int(((closes_ns[used] - opens_ns[used]) // bar_ns).max()) if len(used) else 0
    slot = since_open // bar_ns
    row_of_bar = np.full(len(starts), -1)
    row_of_bar[on_grid] = rows.ravel()

    def matrix(values: np.ndarray) -> np.ndarray:
        grid = np.full((len(used), n_slots), np.nan)
        grid[row_of_bar[on_grid], slot[on_grid]] = values[on_grid]
        return grid

    return SessionGrid(
        opens=opens_ns[used],
        closes=closes_ns[used],
        bar_ns=bar_ns,
        close=matrix(prices.closes),
        volume=matrix(prices.volumes) if prices.has_volume else None,
        row_of_bar=row_of_bar,
        slot_of_bar=np.where(on_grid, slot, 0),
    )


def window_sums(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, K) with NaN for missing -> cumulative sums and cumulative missing counts, (S, K + 1)
    each: the sum over slots a..b of row r is cum[r, b + 1] - cum[r, a]."""
    missing = np.isnan(values)
    zero = np.zeros((values.shape[0], 1))
    cum = np.concatenate([zero, np.cumsum(np.where(missing, 0.0, values), axis=1)], axis=1)
    cum_missing = np.concatenate([zero, np.cumsum(missing, axis=1)], axis=1)
    return cum, cum_missing


CHUNK = 100_000  # tweets per block: the history arrays are (block x lookback)


def volume_ratio(
    grid: SessionGrid,
    rows: np.ndarray,
    first_slot: np.ndarray,
    last_slot: np.ndarray,
    lookback: int = LOOKBACK_SESSIONS,
    min_sessions: int = MIN_SESSIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """Volume over slots first..last (inclusive) of each row, divided by the median of the same
    slots' summed volume over the previous `lookback` rows (sessions with bars) that have all of
    them; NaN with a reason (an index into VOLUME_REASONS, -1 for none) where there is no ratio:
    no volume column, an empty window, a missing bar (or blank volume) in the window itself or a
    row of -1, or fewer than `min_sessions` usable sessions (or a median of 0). Only earlier
    sessions enter the denominator: no look-ahead."""
    rows, first_slot, last_slot = (
        np.asarray(x, dtype=np.int64) for x in (rows, first_slot, last_slot)
    )
    if grid.volume is None:
        n = len(rows)
        return np.full(n, np.nan), np.full(n, VOLUME_REASONS.index("no_volume_column"))
    if grid.volume.shape[0] == 0:  # no bar on any session's grid
        n = len(rows)
        return np.full(n, np.nan), np.full(n, VOLUME_REASONS.index("volume_gap"))
    cums = window_sums(grid.volume)
    parts = [
        _volume_ratio_block(
            grid,
            cums,
            rows[i : i + CHUNK],
            first_slot[i : i + CHUNK],
            last_slot[i : i + CHUNK],
            lookback,
            min_sessions,
        )
        for i in range(0, len(rows), CHUNK)
    ]
    if not parts:
        return np.zeros(0), np.zeros(0, dtype=int)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _volume_ratio_block(grid, cums, rows, first_slot, last_slot, lookback, min_sessions):
    n = len(rows)
    reason = np.full(n, -1)
    off_grid = rows < 0  # a window bar that is not on the session's grid: treated as a gap
    rows = np.maximum(rows, 0)
    empty = last_slot < first_slot
    a = np.clip(first_slot, 0, grid.n_slots)
    b = np.clip(last_slot + 1, a, grid.n_slots)  # exclusive end
    cum, cum_missing = cums

    own = cum[rows, b] - cum[rows, a]
    own_gaps = cum_missing[rows, b] - cum_missing[rows, a]
    history = rows[:, None] - np.arange(1, lookback + 1)[None, :]
    past = np.maximum(history, 0)
    sums = cum[past, b[:, None]] - cum[past, a[:, None]]
    gaps = cum_missing[past, b[:, None]] - cum_missing[past, a[:, None]]
    usable = (history >= 0) & (gaps == 0)
    n_usable = usable.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        masked = np.where(usable, sums, np.nan)
        median = np.full(n, np.nan)
        enough = n_usable >= min_sessions
        if enough.any():
            median[enough] = np.nanmedian(masked[enough], axis=1)
        ratio = own / median
    no_history = ~enough | ~(median > 0)
    # Reverse order of precedence: the first reason in VOLUME_REASONS wins.
    for name, where in (
        ("no_volume_history", no_history),
        ("volume_gap", (own_gaps > 0) | off_grid),
        ("empty_window", empty),
    ):
        reason = np.where(where, VOLUME_REASONS.index(name), reason)
    return np.where(reason >= 0, np.nan, ratio), reason
