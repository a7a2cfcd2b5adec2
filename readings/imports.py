"""Reading CSV files of readings in chunks for ``import_readings``: parsing only, no database.

A file is read as lines, ``chunk`` lines at a time, so memory stays flat whatever its size. A chunk without
quotes, blank lines or bad cells is parsed by numpy in C (the common case: a historian's export); any other
chunk goes through the csv module row by row, which finds each problem and its line number.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
DELIMITERS = (",", ";", "\t", "|")
# Names taken as the time column when --time-column is not given (case-insensitive), else the first column.
TIME_COLUMNS = ("time", "datetime", "timestamp")
LONG_SENSOR_COLUMNS = ("sensor", "sensor_id")
UNIX_FORMATS = {"unix": 1_000_000, "unix_ms": 1_000}

_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=UTC)
_US = timedelta(microseconds=1)
_MINUTE_US = 60_000_000

TIME_REASON = "Not a date-time: {value!r}. Use ISO 8601, e.g. 2026-11-26T08:00:00Z, or give --time-format."


class ImportRefused(Exception):
    """The file cannot be imported as asked (layout, mapping, sensors); the message says what to do."""


@dataclass(frozen=True)
class Problem:
    """Something wrong at a line of the file: the whole row (``column`` None) or one cell."""

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Layout:
    """Which column holds what. Wide form: ``values`` are the sensor columns; long form: the one value column."""

    header: list[str]
    delimiter: str
    long: bool
    time: int
    values: list[int]
    sensor: int | None = None
    quality: int | None = None
    labels: list[int] = field(default_factory=list)

    def name(self, index: int) -> str:
        return self.header[index]


@dataclass
class Chunk:
    """The rows of one chunk as columns. Times are UTC microseconds since the epoch, valid where ``row_ok``."""

    line: np.ndarray  # int64, the line each row starts on
    time: np.ndarray  # int64
    row_ok: np.ndarray  # bool: the row as a whole is usable (time, labels, field count)
    values: np.ndarray  # float64 [rows, value columns]
    present: np.ndarray  # bool [rows, value columns]: the cell is not blank
    cell_ok: np.ndarray  # bool [rows, value columns]: a finite number (and, long form, a valid quality)
    quality: np.ndarray  # float64 [rows] (1.0 in wide form)
    labels: np.ndarray  # int8 [rows, label columns]
    sensors: np.ndarray | None  # long form: the sensor ID of each row (object)
    problems: list[Problem]
    position: int  # bytes of the file read so far (compressed bytes for gzip), for progress

    def __len__(self) -> int:
        return len(self.line)


class CsvSource:
    """A CSV file, gzip-compressed or not (by its .gz suffix or its first bytes), read as text lines."""

    def __init__(self, path: Path | str, *, encoding: str = "utf-8-sig"):
        self.path = Path(path)
        try:
            self.raw = self.path.open("rb")
        except OSError as exc:
            raise ImportRefused(f"Cannot open {self.path}: {exc.strerror or exc}.") from exc
        magic = self.raw.read(2)
        self.raw.seek(0)
        self.size = self.path.stat().st_size
        binary = gzip.GzipFile(fileobj=self.raw) if magic == GZIP_MAGIC or self.path.suffix == ".gz" else self.raw
        # newline="": line ends inside quoted fields reach the csv module untranslated, as it requires.
        self.text = io.TextIOWrapper(binary, encoding=encoding, newline="")
        self.encoding = encoding
        self.lines = self._lines()

    def _lines(self) -> Iterator[str]:
        try:
            yield from self.text
        except UnicodeDecodeError as exc:
            raise ImportRefused(
                f"{self.path} is not {self.encoding} text ({exc.reason} at byte {exc.start} of a block); "
                "give its encoding with --encoding, e.g. --encoding latin-1."
            ) from exc
        except (gzip.BadGzipFile, EOFError) as exc:
            raise ImportRefused(f"{self.path} is not a readable gzip file ({exc}); check the file.") from exc

    @property
    def position(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.text.close()
        self.raw.close()

    def __enter__(self) -> CsvSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_header(source: CsvSource, delimiter: str | None) -> tuple[list[str], str]:
    """The column names (line 1) and the delimiter: given, or the most frequent of , ; tab | in the header."""
    first = next(source.lines, None)
    if first is None or not first.strip():
        raise ImportRefused(f"{source.path} is empty or its first line is blank; line 1 must name the columns.")
    if delimiter is None:
        delimiter = max(DELIMITERS, key=first.count)
    header = [name.strip() for name in next(csv.reader([first], delimiter=delimiter))]
    if len(header) < 2:
        raise ImportRefused(
            f"Line 1 has a single column ({first.strip()[:80]!r}) with delimiter {delimiter!r}; "
            "give the file's delimiter with --delimiter."
        )
    seen: set[str] = set()
    for name in header:
        if not name:
            raise ImportRefused("Line 1 has a column without a name; every column needs one.")
        if name in seen:
            raise ImportRefused(f"Line 1 names column {name!r} twice; rename one of them.")
        seen.add(name)
    return header, delimiter


def find_column(header: list[str], wanted: str | None, defaults: tuple[str, ...], *, what: str) -> int | None:
    """The index of column ``wanted`` (exact name), or of the first of ``defaults`` (any case); None if absent."""
    if wanted is not None:
        if wanted not in header:
            raise ImportRefused(f"No column {wanted!r} for {what} in line 1 (columns: {', '.join(header)}).")
        return header.index(wanted)
    lowered = [name.lower() for name in header]
    for name in defaults:
        if name in lowered:
            return lowered.index(name)
    return None


class TimeParser:
    """Turns time strings into UTC microseconds: ISO 8601 (default), a strptime format, or unix / unix_ms.

    Times with a UTC offset keep it; naive times are taken in ``zone``.
    """

    def __init__(self, *, time_format: str | None, zone: tzinfo):
        self.time_format = time_format
        self.zone = zone
        self.utc = zone is UTC or getattr(zone, "key", None) in ("UTC", "Etc/UTC")

    def parse(self, strings: np.ndarray, lines: np.ndarray, column: str) -> tuple[np.ndarray, np.ndarray, list]:
        """(microseconds, ok, problems) for ``strings``; a bad string is a problem at its line."""
        count = len(strings)
        if count and self.time_format is None:
            fast = self._numpy(strings)
            if fast is not None:
                return self._localise(fast, np.zeros(count, dtype=bool)), np.ones(count, dtype=bool), []
        micros = np.zeros(count, dtype=np.int64)
        ok = np.ones(count, dtype=bool)
        aware = np.zeros(count, dtype=bool)
        problems = []
        scale = UNIX_FORMATS.get(self.time_format)
        for index, text in enumerate(strings):
            try:
                if scale is not None:
                    number = float(text)
                    if not math.isfinite(number) or abs(number) > 1e17:
                        raise ValueError
                    micros[index] = round(number * scale)
                    aware[index] = True
                    continue
                moment = (
                    datetime.fromisoformat(text.strip())
                    if self.time_format is None
                    else datetime.strptime(text.strip(), self.time_format)
                )
                if moment.tzinfo is None:
                    micros[index] = (moment - _EPOCH) // _US
                else:
                    micros[index] = (moment - _EPOCH_UTC) // _US
                    aware[index] = True
            except (ValueError, TypeError, OverflowError):
                ok[index] = False
                problems.append(Problem(int(lines[index]), column, TIME_REASON.format(value=text)))
        return self._localise(micros, aware), ok, problems

    @staticmethod
    def _numpy(strings: np.ndarray) -> np.ndarray | None:
        # numpy parses naive ISO times in C; it also takes "now" and "today" (hence the length floor), and
        # times with an offset only with a warning: those go through Python, which keeps the offset.
        strings = np.asarray(strings, dtype=str)
        if np.char.str_len(strings).min() < 10:
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                parsed = strings.astype("datetime64[us]")
        except (ValueError, TypeError, OverflowError, Warning):
            return None
        if np.isnat(parsed).any():
            return None
        return parsed.astype(np.int64)

    def _localise(self, micros: np.ndarray, aware: np.ndarray) -> np.ndarray:
        """Naive local times to UTC. Offsets change only on whole minutes, so one lookup per distinct minute."""
        naive = ~aware
        if self.utc or not naive.any():
            return micros
        local = micros[naive]
        minutes, inverse = np.unique(local // _MINUTE_US, return_inverse=True)
        offsets = np.array(
            [
                # fold 0: an hour the clocks repeat is read as its first pass (documented in operations.md).
                self.zone.utcoffset(_EPOCH + timedelta(minutes=int(minute))) // _US
                for minute in minutes
            ],
            dtype=np.int64,
        )
        result = micros.copy()
        result[naive] = local - offsets[inverse]
        return result


class ChunkReader:
    """The file's data rows (after line 1), ``size`` lines per chunk."""

    def __init__(self, source: CsvSource, layout: Layout, times: TimeParser, *, size: int):
        self.source = source
        self.layout = layout
        self.times = times
        self.size = size
        self.next_line = 2

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            lines = list(itertools.islice(self.source.lines, self.size))
            if not lines:
                return
            first = self.next_line
            chunk = self._fast(lines, first)
            if chunk is None:
                chunk = self._slow(lines, first)
            else:
                self.next_line += len(lines)
            yield chunk

    # --- numpy: a chunk that is clean from end to end -------------------------------------------------------

    def _fast(self, lines: list[str], first: int) -> Chunk | None:
        layout = self.layout
        delimiter = layout.delimiter
        fields = len(layout.header) - 1
        for line in lines:
            if line.count(delimiter) != fields or '"' in line or not line.strip():
                return None
        numeric = [*layout.values, *([layout.quality] if layout.quality is not None else []), *layout.labels]
        try:
            table = np.loadtxt(
                lines, delimiter=delimiter, usecols=numeric, dtype=np.float64, ndmin=2, comments=None, quotechar=None
            )
            time_strings = np.loadtxt(
                lines, delimiter=delimiter, usecols=[layout.time], dtype=str, ndmin=1, comments=None, quotechar=None
            )
            sensors = None
            if layout.long:
                sensors = np.loadtxt(
                    lines,
                    delimiter=delimiter,
                    usecols=[layout.sensor],
                    dtype=str,
                    ndmin=1,
                    comments=None,
                    quotechar=None,
                ).astype(object)
        except ValueError:
            return None
        if len(table) != len(lines) or not np.isfinite(table).all():
            return None
        values = table[:, : len(layout.values)]
        quality = np.ones(len(lines))
        if layout.quality is not None:
            quality = table[:, len(layout.values)]
            if ((quality < 0) | (quality > 1)).any():
                return None
        labels = table[:, table.shape[1] - len(layout.labels) :]
        if not np.isin(labels, (0.0, 1.0)).all():
            return None
        line_numbers = np.arange(first, first + len(lines), dtype=np.int64)
        micros, ok, problems = self.times.parse(time_strings, line_numbers, layout.name(layout.time))
        if sensors is not None:
            sensors = np.array([sensor.strip() for sensor in sensors], dtype=object)
        cells = np.ones(values.shape, dtype=bool)
        return Chunk(
            line=line_numbers,
            time=micros,
            row_ok=ok,
            values=values,
            present=cells,
            cell_ok=cells,
            quality=quality,
            labels=labels.astype(np.int8),
            sensors=sensors,
            problems=problems,
            position=self.source.position,
        )

    # --- the csv module: row by row, with a reason for every problem ----------------------------------------

    def _slow(self, lines: list[str], first: int) -> Chunk:
        layout = self.layout
        # Chained to the rest of the file: a quoted field may run past the chunk's last line.
        reader = csv.reader(itertools.chain(lines, self.source.lines), delimiter=layout.delimiter)
        fields = len(layout.header)
        width = len(layout.values)
        problems: list[Problem] = []
        line_numbers: list[int] = []
        time_strings: list[str] = []
        row_ok: list[bool] = []
        values: list[list[float]] = []
        present: list[list[bool]] = []
        cell_ok: list[list[bool]] = []
        quality: list[float] = []
        labels: list[list[int]] = []
        sensors: list[str] = []
        consumed = 0
        while consumed < len(lines):
            line = first + consumed
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                consumed = reader.line_num
                problems.append(Problem(line, None, f"Not readable as CSV: {exc}."))
                continue
            consumed = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank lines carry nothing
            ok = True
            if len(row) != fields:
                problems.append(Problem(line, None, f"{len(row)} fields where line 1 has {fields}."))
                ok = False
                row = (row + [""] * fields)[:fields]
            row_values, row_present, row_cells = [0.0] * width, [False] * width, [False] * width
            for position, index in enumerate(layout.values):
                cell = row[index].strip()
                if not cell:
                    if layout.long:
                        problems.append(Problem(line, layout.name(index), "Required: a finite number."))
                    continue
                row_present[position] = True
                number = _float(cell)
                if number is None:
                    problems.append(Problem(line, layout.name(index), f"Required: a finite number, not {cell!r}."))
                    continue
                row_values[position], row_cells[position] = number, True
            row_quality = 1.0
            if layout.quality is not None and row[layout.quality].strip():
                number = _float(row[layout.quality].strip())
                if number is None or not 0.0 <= number <= 1.0:
                    problems.append(Problem(line, layout.name(layout.quality), "Must be a number from 0 to 1."))
                    row_cells[0] = False
                else:
                    row_quality = number
            row_labels = []
            for index in layout.labels:
                cell = row[index].strip()
                number = _float(cell) if cell else 0.0
                if number not in (0.0, 1.0):
                    problems.append(Problem(line, layout.name(index), f"A label must be 0 or 1, not {cell!r}."))
                    ok = False
                    number = 0.0
                row_labels.append(int(number))
            if layout.long:
                sensors.append(row[layout.sensor].strip())
            line_numbers.append(line)
            time_strings.append(row[layout.time])
            row_ok.append(ok)
            values.append(row_values)
            present.append(row_present)
            cell_ok.append(row_cells)
            quality.append(row_quality)
            labels.append(row_labels)
        self.next_line = first + consumed
        line_array = np.array(line_numbers, dtype=np.int64)
        micros, time_ok, time_problems = self.times.parse(
            np.array(time_strings, dtype=object), line_array, layout.name(layout.time)
        )
        count = len(line_numbers)
        return Chunk(
            line=line_array,
            time=micros,
            row_ok=np.array(row_ok, dtype=bool) & time_ok,
            values=np.array(values, dtype=np.float64).reshape(count, width),
            present=np.array(present, dtype=bool).reshape(count, width),
            cell_ok=np.array(cell_ok, dtype=bool).reshape(count, width),
            quality=np.array(quality, dtype=np.float64),
            labels=np.array(labels, dtype=np.int8).reshape(count, len(layout.labels)),
            sensors=np.array(sensors, dtype=object) if layout.long else None,
            problems=sorted(problems + time_problems, key=lambda problem: problem.line),
            position=self.source.position,
        )


def _float(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def microseconds_to_datetime(micros: int) -> datetime:
    return _EPOCH_UTC + timedelta(microseconds=int(micros))
