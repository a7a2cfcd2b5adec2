"""Windowed features of sensor readings, shared by training and scoring.

A window is ``window`` expected readings of one sensor, aligned to a fixed
origin (the Unix epoch: window k of a sensor covers [k x span, (k+1) x span)
with span = window x its sampling interval), so the windows never depend on the
range read or on when a run happens. Its features are scale-free (divided by the
width of the sensor's normal range) and relative: to the sensor's own previous
windows (level, spread, jumps; the previous BASELINE_WINDOWS window slots by
time, not by count, so a window's features depend only on the readings of its
last HISTORY_WINDOWS slots), and to its peers at the same time (a load change
of the plant moves them together and is not taken for a fault).

Peers are the other sensors of the same type in the same peer group: on assets
of the same site, and of the same machine model where the assets' metadata name
one (``Series.peer_group``, from ``mlops.selectors.sensor_peer_groups``). Not the
whole fleet: another plant runs other shifts, at other hours. Not the asset's
sensors of other types: the peer features compare levels in the sensor's own
unit, and with the asset's other sensors as peers (amperes against degrees) a
plant-wide load change looked like a fault (current and flow fell from F1 1.0 to
0.67 on the default fleet, measured); behaviour across an asset's sensors is the
per-asset normal model's (``mlops.normal``). A sensor alone of its type in its
group has every sensor of its type as peers: without any, a shift change looks
like a level shift (on the default fleet, whose sites share one shift pattern,
site peers alone left current and flow with none, and the pooled F1 fell from at
least 0.9 to 0.75, measured).

Computed for all series at once with numpy, never a Python loop per window: the
windows' own statistics row-wise on one (windows x readings) matrix per window
length (so each is the very number numpy gives for that window alone: a row
reduction of a matrix adds in the same order as the reduction of the row by
itself, which ``np.add.reduceat`` does not), the baselines on one (windows x
BASELINE_WINDOWS) matrix, and the peers' medians on one (time x peers) matrix per
group. ``tests/mlops/test_features_reference.py`` checks every feature against a
plain loop per window, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

FEATURES = (
    "level",  # window mean minus the median of the previous windows' means
    "level_vs_peers",  # the same, minus the peers' median at this time
    "change",  # window mean minus the previous window's
    "change_vs_peers",
    "level_z",  # level / the median absolute level of the previous windows (the sensor's own normal swing)
    "change_z",
    "log_spread_ratio",  # log of std / median std of the previous windows
    "slope",  # least-squares slope across the window
    "jump_ratio",  # largest step / median largest step of the previous windows
    "flat_share",  # share of consecutive equal values (a stuck sensor)...
    "flat_excess",  # ...above the sensor's usual share (coarse resolution repeats values too)
    "flagged_share",  # share of readings the gateway flagged (quality < 1)
    "min_quality",
    "out_of_range_share",
)
BASELINE_WINDOWS = 30
# Window slots a window's features depend on, itself included: its baseline is the previous BASELINE_WINDOWS
# slots, and level_z compares its level with those windows' own levels (each against the BASELINE_WINDOWS before
# it). Reading this many slots before the first window to score gives exactly the features of one run over all.
HISTORY_WINDOWS = 2 * BASELINE_WINDOWS + 1
# The fixed origin of every sensor's windows.
EPOCH = np.datetime64("1970-01-01T00:00:00", "us")
_EPOCH_AWARE = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Readings per window, by default.
WINDOW = 10
_EPS = 1e-6
# Cells of the (windows x BASELINE_WINDOWS) and (windows x peers) matrices built at once: memory stays bounded
# on a backlog of millions of windows.
_CHUNK_CELLS = 4_000_000


@dataclass
class Series:
    """One sensor's readings in time order, with what the features need to know about the sensor."""

    sensor_pk: int
    sensor_type: str
    interval: int  # expected seconds between readings
    normal_min: float | None
    normal_max: float | None
    times: np.ndarray  # datetime64[us], UTC
    values: np.ndarray
    quality: np.ndarray
    asset_pk: int | None = None
    # With the type, who the series' peers are (see build_windows): mlops.selectors.peer_group, the asset's site
    # and machine model. None: every series of the type (a sensor alone in its group; series built without one).
    peer_group: str | None = None

    @property
    def width(self) -> float:
        if self.normal_min is not None and self.normal_max is not None and self.normal_max > self.normal_min:
            return self.normal_max - self.normal_min
        spread = float(np.percentile(self.values, 95) - np.percentile(self.values, 5)) if len(self.values) else 0.0
        return spread or 1.0


@dataclass
class Windows:
    """One row per window: who, when, and the features (in FEATURES order)."""

    sensor_pk: np.ndarray
    sensor_type: np.ndarray
    start: np.ndarray  # datetime64[us], first reading's time
    end: np.ndarray  # datetime64[us], last reading's time
    X: np.ndarray
    slot: np.ndarray = None  # int64: the window's number k from EPOCH (its span is the sensor's own)
    slot_start: np.ndarray = None  # datetime64[us]: EPOCH + k x span, the window's fixed start
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sensor_pk)

    def subset(self, mask: np.ndarray) -> Windows:
        return Windows(
            self.sensor_pk[mask],
            self.sensor_type[mask],
            self.start[mask],
            self.end[mask],
            self.X[mask],
            self.slot[mask],
            self.slot_start[mask],
        )


def to_us(moment: datetime) -> np.datetime64:
    """An aware datetime as the naive UTC microseconds every Series and Windows holds.

    By integer microseconds from the epoch: a scoring run converts thousands, and this takes a third of the time
    of ``astimezone``, ``replace`` and numpy's parsing of a datetime (the same value, in any time zone)."""
    return np.datetime64((moment - _EPOCH_AWARE) // _MICROSECOND, "us")


def to_aware(moment: np.datetime64) -> datetime:
    """The other way: naive UTC (any numpy unit) as an aware datetime."""
    return _EPOCH_AWARE + timedelta(microseconds=int(moment.astype("datetime64[us]").astype(np.int64)))


def to_aware_list(moments: np.ndarray) -> list[datetime]:
    """``to_aware`` of each of ``moments`` (an array of naive UTC times), at once."""
    return [
        _EPOCH_AWARE + timedelta(microseconds=value)
        for value in moments.astype("datetime64[us]").astype(np.int64).tolist()
    ]


def span_of(interval: int, window: int) -> np.timedelta64:
    """The length of one window of a sensor sampled every ``interval`` seconds."""
    return np.timedelta64(window * interval * 1_000_000, "us")


def slot_of(times: np.ndarray, span: np.timedelta64) -> np.ndarray:
    """The window number of each time (datetime64[us]); floor division, so times before 1970 work too.

    On the integers under the times (microseconds from EPOCH): numpy's division of timedeltas took six times as
    long, and a scheduled run divides every reading it reads."""
    step = int(np.timedelta64(span, "us").astype(np.int64))
    return np.asarray(times).astype("datetime64[us]", copy=False).view(np.int64) // step


@dataclass
class _Own:
    """Every window's own statistics, all series concatenated (in series order, then time)."""

    series: np.ndarray  # int64: index of the window's series in the list given
    slot: np.ndarray
    start: np.ndarray  # datetime64[us]
    end: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    slope: np.ndarray
    jump: np.ndarray
    flat_share: np.ndarray
    flagged_share: np.ndarray
    min_quality: np.ndarray
    out_of_range_share: np.ndarray


def _own_windows(series: list[Series], window: int) -> _Own:
    """The windows with enough readings, and each one's statistics of its own readings."""
    lengths = np.array([len(item.times) for item in series], dtype=np.int64)
    owner = np.repeat(np.arange(len(series), dtype=np.int64), lengths)
    if len(owner):
        times = np.concatenate([item.times.astype("datetime64[us]") for item in series])
        values = np.concatenate([np.asarray(item.values, dtype=np.float64) for item in series])
        quality = np.concatenate([np.asarray(item.quality, dtype=np.float64) for item in series])
    else:
        times, values, quality = np.array([], dtype="datetime64[us]"), np.array([]), np.array([])
    spans = np.array([span_of(item.interval, window).astype(np.int64) for item in series], dtype=np.int64)
    widths = np.array([item.width for item in series], dtype=np.float64)
    lows = np.array([-np.inf if item.normal_min is None else item.normal_min for item in series], dtype=np.float64)
    highs = np.array([np.inf if item.normal_max is None else item.normal_max for item in series], dtype=np.float64)
    # The window of each reading (slot_of, on integers), and runs of one series and one window.
    slots = np.floor_divide((times - EPOCH).astype(np.int64), spans[owner])
    new = np.ones(len(owner), dtype=bool)
    new[1:] = (owner[1:] != owner[:-1]) | (slots[1:] != slots[:-1])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(owner)))
    kept = counts >= max(2, window // 2)  # too few readings to say anything
    starts, counts = starts[kept], counts[kept]

    n = len(starts)
    columns = {
        name: np.empty(n) for name in _Own.__dataclass_fields__ if name not in ("series", "slot", "start", "end")
    }
    # Row by row on one matrix per window length: the same additions, in the same order, as on each window alone.
    for length in np.unique(counts):
        rows = np.flatnonzero(counts == length)
        cells = starts[rows][:, None] + np.arange(length)
        whose = owner[starts[rows]]
        raw = values[cells]
        v = raw / widths[whose][:, None]
        q = quality[cells]
        steps = np.diff(v, axis=1)
        x = np.arange(length) - (length - 1) / 2
        outside = (raw < lows[whose][:, None]) | (raw > highs[whose][:, None])
        columns["mean"][rows] = v.mean(axis=1)
        columns["std"][rows] = v.std(axis=1)
        columns["slope"][rows] = (v * x).sum(axis=1) / (x * x).sum() * length
        columns["jump"][rows] = np.abs(steps).max(axis=1)
        columns["flat_share"][rows] = (steps == 0).mean(axis=1)
        columns["flagged_share"][rows] = (q < 1).mean(axis=1)
        columns["min_quality"][rows] = q.min(axis=1)
        columns["out_of_range_share"][rows] = outside.mean(axis=1)
    return _Own(
        series=owner[starts],
        slot=slots[starts],
        start=times[starts],
        end=times[starts + counts - 1],
        **columns,
    )


def _baseline(own: _Own, rows: np.ndarray) -> np.ndarray:
    """Which of each window's previous BASELINE_WINDOWS rows are its baseline (windows x BASELINE_WINDOWS, bool),
    for the windows ``rows`` (indices); the others' are left False.

    The baseline is the sensor's windows of the previous BASELINE_WINDOWS slots (by time: a gap shortens it).
    A sensor has one window per slot, so they are among its previous BASELINE_WINDOWS rows; column j stands
    for row i - BASELINE_WINDOWS + j, so the used cells of a row are its last ones.
    """
    used = np.zeros((len(own.slot), BASELINE_WINDOWS), dtype=bool)
    back = np.arange(-BASELINE_WINDOWS, 0)[None, :]
    step = max(1, _CHUNK_CELLS // BASELINE_WINDOWS)
    for first in range(0, len(rows), step):
        part = rows[first : first + step]
        index = part[:, None] + back
        clipped = np.clip(index, 0, None)
        used[part] = (
            (index >= 0)
            & (own.series[clipped] == own.series[part][:, None])
            & (own.slot[clipped] >= (own.slot[part] - BASELINE_WINDOWS)[:, None])
        )
    return used


def _baseline_medians(columns: list[np.ndarray], used: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
    """Per column and row i of ``rows`` (indices): the median of the column over row i's baseline rows (``used``),
    or its own value where that is empty; NaN for the other rows.

    The baselines fit one (rows x BASELINE_WINDOWS) matrix, sorted per row with the unused cells last.
    """
    out = [np.full(len(used), np.nan) for _ in columns]
    back = np.arange(-BASELINE_WINDOWS, 0)[None, :]
    step = max(1, _CHUNK_CELLS // BASELINE_WINDOWS)
    for first in range(0, len(rows), step):
        part = rows[first : first + step]
        index = part[:, None] + back
        taken = used[part]
        empty = ~taken.any(axis=1)
        taken[empty, -1] = True  # the row itself stands in for a missing baseline
        index[empty, -1] = part[empty]
        index = np.where(taken, index, -1)
        count = taken.sum(axis=1)
        local = np.arange(len(part))
        low, high = (count - 1) // 2, count // 2
        for values, median in zip(columns, out, strict=True):
            matrix = np.append(values, np.inf)[index]  # unused cells (-1) read +inf
            matrix.sort(axis=1)
            median[part] = (matrix[local, low] + matrix[local, high]) / 2
    return out


def build_windows(series: list[Series], *, window: int, since: dict[int, int] | None = None) -> Windows:
    """Windows of every series; peers are the other series of the same type and peer group, matched by time.

    ``since``: only the windows of the series whose sensor pk is in it, from that window number (slot) on, with
    the very features they get without it; the others' windows are read as history and peers only. A scheduled
    run scores one window per sensor out of the HISTORY_WINDOWS + 1 it reads: the baselines' medians (most of
    this function's time) are taken only where the windows scored depend on them, the windows of the last
    BASELINE_WINDOWS slots before them (their levels) and the peers' at their time.
    """
    own = _own_windows(series, window)
    n = len(own.slot)
    spans = np.array([span_of(item.interval, window).astype(np.int64) for item in series], dtype=np.int64)
    row_spans = spans[own.series]
    ends = own.slot * row_spans + row_spans  # the window's fixed end, in microseconds from EPOCH
    if since is None:
        keep = in_needed = np.ones(n, dtype=bool)
    else:
        unwanted = np.iinfo(np.int64).max
        first = np.array([since.get(item.sensor_pk, unwanted) for item in series], dtype=np.int64)
        keep = own.slot >= first[own.series]
        # A window kept depends on the windows of its sensor's previous BASELINE_WINDOWS slots (they start after
        # its start minus BASELINE_WINDOWS spans) and on its peers' windows ending after its end minus the longer
        # span (see _peer_medians): all end after the earliest start kept minus BASELINE_WINDOWS of their spans.
        earliest = (ends - row_spans)[keep].min() if keep.any() else unwanted
        in_needed = ends > earliest - BASELINE_WINDOWS * row_spans
    kept, needed = np.flatnonzero(keep), np.flatnonzero(in_needed)
    used = _baseline(own, needed)
    has_history = used.any(axis=1)
    means = own.mean
    usual_mean, usual_std, usual_jump, usual_flat = _baseline_medians(
        [means, own.std, own.jump, own.flat_share], used, needed
    )
    level = means - usual_mean
    # From the latest window of the baseline period (none: no change to speak of).
    change = np.where(has_history, means - np.concatenate([means[:1], means[:-1]]), 0.0)
    usual_level, usual_change = _baseline_medians([np.abs(level), np.abs(change)], used, kept)
    log_spread = np.log((own.std + _EPS) / (usual_std + _EPS))
    jump_ratio = own.jump / (usual_jump + _EPS)
    level_z = level / (usual_level + 1e-3)
    change_z = change / (usual_change + 1e-3)
    flat_excess = own.flat_share - usual_flat
    del used

    # Peers (see _peer_medians for how they are matched by time): the other sensors of the same type and the same
    # peer group (Series.peer_group: the asset's site and machine model); a sensor without a group (None: the
    # only one of its type in its group, or series built without one) has every other sensor of its type.
    types: dict[str, int] = {}
    groups: dict[tuple, int] = {}
    type_of = np.array([types.setdefault(item.sensor_type, len(types)) for item in series], dtype=np.int64)
    group_of = np.array(
        [
            -1 if item.peer_group is None else groups.setdefault((item.sensor_type, item.peer_group), len(groups))
            for item in series
        ],
        dtype=np.int64,
    )
    window_type, window_group = type_of[own.series], group_of[own.series]
    peer_level, peer_change = np.zeros(n), np.zeros(n)
    for scope, key in [(window_type, value) for value in np.unique(window_type)] + [
        (window_group, value) for value in np.unique(window_group[window_group >= 0])
    ]:
        rows = np.flatnonzero((scope == key) & in_needed)
        wanted = (window_group[rows] == -1 if scope is window_type else np.ones(len(rows), dtype=bool)) & keep[rows]
        if wanted.any():
            peer_level[rows[wanted]], peer_change[rows[wanted]] = _peer_medians(
                own.series[rows], ends[rows], spans[own.series[rows]], level[rows], change[rows], wanted
            )

    X = np.column_stack(
        [
            {
                "level": level,
                "level_vs_peers": level - peer_level,
                "change": change,
                "change_vs_peers": change - peer_change,
                "level_z": level_z,
                "change_z": change_z,
                "log_spread_ratio": log_spread,
                "slope": own.slope,
                "jump_ratio": jump_ratio,
                "flat_share": own.flat_share,
                "flat_excess": flat_excess,
                "flagged_share": own.flagged_share,
                "min_quality": own.min_quality,
                "out_of_range_share": own.out_of_range_share,
            }[name]
            for name in FEATURES
        ]
    ).reshape(-1, len(FEATURES))[kept]
    pks = np.array([item.sensor_pk for item in series], dtype=np.int64)
    types = np.empty(len(series), dtype=object)
    types[:] = [item.sensor_type for item in series]
    whose = own.series[kept]
    return Windows(
        sensor_pk=pks[whose],
        sensor_type=types[whose],
        start=own.start[kept],
        end=own.end[kept],
        X=X,
        slot=own.slot[kept],
        slot_start=EPOCH + (ends[kept] - row_spans[kept]).astype("timedelta64[us]"),
    )


def _peer_medians(
    owner: np.ndarray, ends: np.ndarray, spans: np.ndarray, level: np.ndarray, change: np.ndarray, wanted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The median level and change of the peers of each ``wanted`` window at its time (0 without any).

    The peers are the other sensors whose windows are given: ``owner`` says whose window each is (each owner's
    windows together, in time order), ``ends`` its fixed end and ``spans`` its sensor's span (microseconds). A
    peer is taken at a window's end E: its latest window ending by E, if that ends after E minus the longer of
    the two spans (sensors sampling at different rates are matched by time, not by window number). With one
    span among them that is the peer's window of the same slot: one (time x sensors) matrix holds every value,
    and each window's peers are its row without its own cell.
    """
    targets = np.flatnonzero(wanted)
    members, column = np.unique(owner, return_inverse=True)
    if len(members) < 2:
        return np.zeros(len(targets)), np.zeros(len(targets))
    if (spans == spans[0]).all():
        times, row = np.unique(ends, return_inverse=True)
        out = []
        for values in (level, change):
            matrix = np.full((len(times), len(members)), np.nan)
            matrix[row, column] = values
            out.append(_median_without_own(matrix, row[targets], column[targets]))
        return out[0], out[1]
    # Several spans: each member's value at every wanted window's end, by a search in the member's windows.
    first = np.searchsorted(column, np.arange(len(members)))
    last = np.append(first[1:], len(column))
    out_level, out_change = np.empty(len(targets)), np.empty(len(targets))
    step = max(1, _CHUNK_CELLS // len(members))
    for lo in range(0, len(targets), step):
        part = slice(lo, lo + step)
        chosen = targets[part]
        at = ends[chosen]
        levels = np.full((len(chosen), len(members)), np.nan)
        changes = np.full((len(chosen), len(members)), np.nan)
        for peer in range(len(members)):
            peer_ends = ends[first[peer] : last[peer]]
            found_at = np.searchsorted(peer_ends, at, side="right") - 1
            found = found_at >= 0
            found[found] &= peer_ends[found_at[found]] > (
                at[found] - np.maximum(spans[chosen][found], spans[first[peer]])
            )
            found &= column[chosen] != peer  # never its own window
            levels[found, peer] = level[first[peer] : last[peer]][found_at[found]]
            changes[found, peer] = change[first[peer] : last[peer]][found_at[found]]
        out_level[part] = _row_nanmedian(levels)
        out_change[part] = _row_nanmedian(changes)
    return out_level, out_change


def _sorted_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row sorted (numpy sorts NaN, the missing cells, after +inf), its count of known cells, the order."""
    order = np.argsort(matrix, axis=1)
    return np.take_along_axis(matrix, order, axis=1), (~np.isnan(matrix)).sum(axis=1), order


def _row_nanmedian(matrix: np.ndarray) -> np.ndarray:
    """The median of each row's known values (as np.nanmedian); 0 where a row has none (no peer at that time)."""
    ordered, count, _ = _sorted_rows(matrix)
    rows = np.arange(len(matrix))
    median = (ordered[rows, np.clip((count - 1) // 2, 0, None)] + ordered[rows, count // 2]) / 2
    return np.nan_to_num(np.where(count > 0, median, np.nan), nan=0.0)


def _median_without_own(matrix: np.ndarray, row: np.ndarray, column: np.ndarray) -> np.ndarray:
    """For each window (its ``row`` and ``column``), the median of its row's known cells but its own; 0 without any."""
    ordered, count, order = _sorted_rows(matrix)
    width = matrix.shape[1]
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(width), order.shape), axis=1)
    own_known = ~np.isnan(matrix[row, column])
    own_rank = np.where(own_known, rank[row, column], width)
    peers = count[row] - own_known
    # The middle one or two among the peers, then their places in the row with the own cell in it.
    low, high = np.clip((peers - 1) // 2, 0, None), peers // 2
    low, high = low + (low >= own_rank), high + (high >= own_rank)
    median = (ordered[row, np.minimum(low, width - 1)] + ordered[row, np.minimum(high, width - 1)]) / 2
    return np.nan_to_num(np.where(peers > 0, median, np.nan), nan=0.0)
