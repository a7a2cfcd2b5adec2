"""Synthetic plant signals for ``seed_data``: a deterministic fleet, realistic readings, labelled faults.

Everything here is pure computation (no database): the same seed, sensor
number and window always give the same fleet, the same values and the same
faults, whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from readings.choices import FaultKind
from sensors.choices import AssetCriticality, SensorType

# Values are generated in fixed blocks per sensor, each with its own random
# stream, so the data does not depend on --batch-size.
BLOCK = 65_536
SENSORS_PER_ASSET = 4
SITES = ["North Plant", "South Plant", "East Works"]
LINES_PER_SITE = 4


@dataclass(frozen=True)
class Profile:
    unit: str
    baseline: float
    normal_min: float
    normal_max: float
    physical_min: float
    physical_max: float
    cycle: str  # "daily" (ambient) or "shift" (production load)
    amplitude: float
    noise: float
    decimals: int
    degradation: float = 0.0  # rise over a degradation episode; 0 = this type does not degrade


PROFILES: dict[str, Profile] = {
    SensorType.TEMPERATURE: Profile("°C", 55.0, 20.0, 80.0, -40.0, 250.0, "daily", 4.0, 0.4, 2, degradation=18.0),
    # Vibration velocity RMS; 7.1 mm/s is the ISO 10816 zone C/D boundary for medium machines.
    SensorType.VIBRATION: Profile("mm/s", 2.8, 0.0, 7.1, 0.0, 50.0, "shift", 0.4, 0.12, 3, degradation=4.5),
    SensorType.PRESSURE: Profile("kPa", 450.0, 350.0, 600.0, 0.0, 2000.0, "shift", 18.0, 2.5, 1),
    SensorType.HUMIDITY: Profile("%", 45.0, 20.0, 70.0, 0.0, 100.0, "daily", 9.0, 0.8, 1),
    SensorType.VOLTAGE: Profile("V", 400.0, 380.0, 420.0, 0.0, 1000.0, "shift", 2.5, 0.6, 1),
    SensorType.CURRENT: Profile("A", 32.0, 5.0, 60.0, 0.0, 500.0, "shift", 9.0, 0.7, 2),
    SensorType.RPM: Profile("rpm", 1480.0, 1400.0, 1550.0, 0.0, 5000.0, "shift", 12.0, 2.0, 0),
    SensorType.FLOW: Profile("m³/h", 120.0, 60.0, 180.0, 0.0, 1000.0, "shift", 22.0, 1.8, 1),
}


@dataclass(frozen=True)
class Machine:
    prefix: str
    name: str
    sensor_types: tuple[str, ...]


MACHINES = [
    Machine(
        "PUMP", "Centrifugal pump", (SensorType.VIBRATION, SensorType.TEMPERATURE, SensorType.PRESSURE, SensorType.FLOW)
    ),
    Machine(
        "MOTOR", "Induction motor", (SensorType.VIBRATION, SensorType.TEMPERATURE, SensorType.CURRENT, SensorType.RPM)
    ),
    Machine(
        "COMP",
        "Air compressor",
        (SensorType.PRESSURE, SensorType.TEMPERATURE, SensorType.VIBRATION, SensorType.CURRENT),
    ),
    Machine(
        "XFMR", "Transformer", (SensorType.VOLTAGE, SensorType.CURRENT, SensorType.TEMPERATURE, SensorType.HUMIDITY)
    ),
]
CRITICALITY_CYCLE = [
    AssetCriticality.HIGH,
    AssetCriticality.MEDIUM,
    AssetCriticality.CRITICAL,
    AssetCriticality.LOW,
    AssetCriticality.MEDIUM,
]

# (kind, shortest, longest) in readings; quality is what a gateway would report.
FAULT_SHAPES: dict[str, tuple[int, int, float]] = {
    FaultKind.SPIKE: (1, 3, 0.5),
    # A broken 4-20 mA loop: the gateway still reports, at the bottom of the scale, flagged unusable.
    FaultKind.DROPOUT: (5, 30, 0.0),
    FaultKind.STUCK: (15, 60, 1.0),
    FaultKind.NOISE_BURST: (10, 40, 0.7),
    FaultKind.LEVEL_SHIFT: (20, 120, 1.0),
    FaultKind.DRIFT: (30, 180, 1.0),
}
MEAN_FAULT_LENGTH = float(np.mean([(lo + hi) / 2 for lo, hi, _ in FAULT_SHAPES.values()]))
# Share of assets whose vibration and temperature creep up over the window.
DEGRADING_SHARE = 0.25


@dataclass(frozen=True)
class AssetSpec:
    number: int  # 1-based
    code: str
    name: str
    site: str
    location: str
    criticality: str
    machine: Machine


@dataclass(frozen=True)
class SensorSpec:
    number: int  # 1-based
    sensor_id: str
    asset: AssetSpec
    sensor_type: str
    name: str

    @property
    def profile(self) -> Profile:
        return PROFILES[self.sensor_type]


def asset_spec(number: int) -> AssetSpec:
    machine = MACHINES[(number - 1) % len(MACHINES)]
    site_index = (number - 1) % len(SITES)
    line = ((number - 1) // len(SITES)) % LINES_PER_SITE + 1
    station = (number - 1) // (len(SITES) * LINES_PER_SITE) + 1
    return AssetSpec(
        number=number,
        code=f"{machine.prefix}-{number:03d}",
        name=f"{machine.name} {number}",
        site=SITES[site_index],
        location=f"Line {line} / Station {station}",
        criticality=CRITICALITY_CYCLE[(number - 1) % len(CRITICALITY_CYCLE)],
        machine=machine,
    )


def sensor_spec(number: int) -> SensorSpec:
    """Sensor ``number`` (1-based) of the seeded fleet; depends on nothing else, so it never changes."""
    asset = asset_spec((number - 1) // SENSORS_PER_ASSET + 1)
    sensor_type = asset.machine.sensor_types[(number - 1) % SENSORS_PER_ASSET]
    return SensorSpec(
        number=number,
        sensor_id=f"sensor-{number:03d}",
        asset=asset,
        sensor_type=sensor_type,
        name=f"{asset.code} {SensorType(sensor_type).label.lower()}",
    )


@dataclass(frozen=True)
class Fault:
    kind: str
    first: int  # index of the first affected reading
    last: int  # index of the last affected reading (inclusive)
    magnitude: float
    quality: float


@dataclass(frozen=True)
class SignalParams:
    """What the generator needs to know about one sensor."""

    number: int
    sensor_type: str
    asset_number: int
    normal_min: float
    normal_max: float


def readings_per_sensor(total: int, sensors: int) -> list[int]:
    """Split ``total`` readings over ``sensors`` as evenly as possible (the first ones get the remainder)."""
    base, extra = divmod(total, sensors)
    return [base + (1 if i < extra else 0) for i in range(sensors)]


class SensorSignal:
    """The readings of one sensor over ``count`` instants ending at ``end``, ``interval`` seconds apart."""

    def __init__(
        self, params: SignalParams, *, count: int, end: np.datetime64, interval: int, seed: int, anomaly_rate: float
    ):
        self.params = params
        self.profile = PROFILES[params.sensor_type]
        self.count = count
        self.interval = interval
        self.seed = seed
        self.first_time = end - np.timedelta64(interval, "s") * (count - 1)
        rng = np.random.default_rng([seed, params.number])
        width = self._width = max(params.normal_max - params.normal_min, 1e-9)
        self.baseline = self.profile.baseline + rng.uniform(-0.05, 0.05) * width
        self.phase = rng.uniform(0, 2 * np.pi)
        self.noise = self.profile.noise * rng.uniform(0.8, 1.2)
        self.degradation_start = self._degradation_start(rng)
        self.faults = self._plan_faults(rng, anomaly_rate)

    # --- planning -------------------------------------------------------------
    def _degradation_start(self, rng: np.random.Generator) -> int | None:
        asset_rng = np.random.default_rng([self.seed, 1_000_000 + self.params.asset_number])
        draw = asset_rng.random()
        if not self.profile.degradation or self.count < 100 or not _degrades(self.seed, self.params.asset_number, draw):
            return None
        return int(self.count * asset_rng.uniform(0.4, 0.75))

    def _plan_faults(self, rng: np.random.Generator, anomaly_rate: float) -> list[Fault]:
        if anomaly_rate <= 0 or self.count < 100:
            return []
        wanted = max(1, int(rng.poisson(anomaly_rate * self.count / MEAN_FAULT_LENGTH)))
        kinds = list(FAULT_SHAPES)
        taken = np.zeros(self.count, dtype=bool)
        faults: list[Fault] = []
        for _ in range(wanted * 4):  # bounded retries for overlapping placements
            if len(faults) == wanted:
                break
            kind = kinds[int(rng.integers(len(kinds)))]
            if not faults:
                # The first fault's kind follows the sensor number, so any len(kinds) sensors in a row show every
                # kind (a fleet of 20 with about one fault each had no stuck value). Still drawn above, so the
                # rest of the random stream is as it would be.
                kind = kinds[(self.params.number - 1 + self.seed) % len(kinds)]
            shortest, longest, quality = FAULT_SHAPES[kind]
            length = int(rng.integers(shortest, longest + 1))
            first = int(rng.integers(1, max(2, self.count - length - 1)))
            last = min(first + length - 1, self.count - 1)
            # Keep a margin of clean readings around each fault so it stands out.
            if taken[max(0, first - 10) : last + 11].any():
                continue
            taken[first : last + 1] = True
            # Downwards only where the signal has room before its physical floor.
            room_below = self.baseline - 1.3 * self._width > self.profile.physical_min
            sign = -1.0 if room_below and rng.random() < 0.5 else 1.0
            magnitude = {
                FaultKind.SPIKE: sign * rng.uniform(0.7, 1.2) * self._width,
                FaultKind.NOISE_BURST: rng.uniform(6, 10) * self.noise,
                FaultKind.LEVEL_SHIFT: sign * rng.uniform(0.25, 0.4) * self._width,
                FaultKind.DRIFT: sign * rng.uniform(0.3, 0.45) * self._width,
            }.get(kind, 0.0)
            faults.append(Fault(kind, first, last, float(magnitude), quality))
        return sorted(faults, key=lambda fault: fault.first)

    def time_at(self, index: int) -> np.datetime64:
        return self.first_time + np.timedelta64(self.interval, "s") * index

    def episodes(self) -> list[tuple[str, int, int]]:
        """(kind, first, last) reading indices of every fault and degradation episode."""
        episodes = [(fault.kind, fault.first, fault.last) for fault in self.faults]
        if self.degradation_start is not None:
            episodes.append((FaultKind.DEGRADATION, self.degradation_start, self.count - 1))
        return episodes

    def labels(self, stored: np.ndarray | None = None) -> list[tuple[str, np.datetime64, np.datetime64]]:
        """Ground truth: (kind, start, end) of every fault and degradation episode.

        ``stored`` (one flag per reading, oldest first) limits the labels to the
        readings that were stored from this signal: a label must never cover
        readings that do not carry its fault (older ones made by another run).
        An episode flagged only in part gets one label per run of flagged readings.
        """
        labels = []
        for kind, first, last in self.episodes():
            if stored is None:
                labels.append((kind, self.time_at(first), self.time_at(last)))
                continue
            for lo, hi in _runs(stored[first : last + 1]):
                labels.append((kind, self.time_at(first + lo), self.time_at(first + hi)))
        return labels

    # --- values ---------------------------------------------------------------
    def _clean(self, index: np.ndarray, times: np.ndarray) -> np.ndarray:
        seconds = times.astype("datetime64[s]").astype(np.int64)
        day_fraction = (seconds % 86_400) / 86_400
        if self.profile.cycle == "daily":
            cycle = np.sin(2 * np.pi * day_fraction + self.phase)
        else:
            # Three shifts: full load 06-14, reduced 14-22, standby at night.
            hour = day_fraction * 24
            cycle = np.where((hour >= 6) & (hour < 14), 1.0, np.where((hour >= 14) & (hour < 22), 0.4, -1.0))
        values = self.baseline + self.profile.amplitude * cycle
        if self.degradation_start is not None:
            progress = np.clip((index - self.degradation_start) / max(1, self.count - self.degradation_start), 0, 1)
            values = values + self.profile.degradation * progress**2
        return values

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (times, values, qualities) in blocks of at most ``BLOCK`` readings, oldest first."""
        step = np.timedelta64(self.interval, "s")
        for block_number, start in enumerate(range(0, self.count, BLOCK)):
            index = np.arange(start, min(start + BLOCK, self.count))
            times = self.first_time + step * index
            values = self._clean(index, times)
            rng = np.random.default_rng([self.seed, self.params.number, block_number])
            values = values + rng.normal(0.0, self.noise, len(index))
            quality = np.ones(len(index))
            for fault in self.faults:
                lo, hi = max(fault.first, start), min(fault.last, index[-1])
                if lo > hi:
                    continue
                sel = slice(lo - start, hi - start + 1)
                self._apply(fault, sel, index[sel], values, quality)
            values = np.round(
                np.clip(values, self.profile.physical_min, self.profile.physical_max), self.profile.decimals
            )
            yield times, values, quality

    def _apply(self, fault: Fault, sel: slice, index: np.ndarray, values: np.ndarray, quality: np.ndarray) -> None:
        if fault.kind == FaultKind.DROPOUT:
            values[sel] = self.profile.physical_min
        elif fault.kind == FaultKind.SPIKE:
            values[sel] += fault.magnitude
        elif fault.kind == FaultKind.STUCK:
            frozen = self._clean(np.array([fault.first]), np.array([self.time_at(fault.first)]))[0]
            values[sel] = frozen
        elif fault.kind == FaultKind.NOISE_BURST:
            rng = np.random.default_rng([self.seed, self.params.number, 7_000_000 + fault.first])
            burst = rng.normal(0.0, fault.magnitude, fault.last - fault.first + 1)
            values[sel] += burst[index - fault.first]
        elif fault.kind == FaultKind.LEVEL_SHIFT:
            values[sel] += fault.magnitude
        elif fault.kind == FaultKind.DRIFT:
            values[sel] += fault.magnitude * (index - fault.first + 1) / (fault.last - fault.first + 1)
        quality[sel] = fault.quality


def _degrades(seed: int, asset_number: int, draw: float) -> bool:
    """Does the asset degrade? A DEGRADING_SHARE of assets by chance, and at least one in every group of 4.

    In each group of assets 1-4, 5-8, ... where chance picked none, the asset with the lowest draw degrades:
    so the default fleet (5 assets) always has a degradation, for every seed, and the others stay as drawn.
    """
    if draw < DEGRADING_SHARE:
        return True
    group = range((asset_number - 1) // 4 * 4 + 1, (asset_number - 1) // 4 * 4 + 5)
    draws = {number: np.random.default_rng([seed, 1_000_000 + number]).random() for number in group}
    return min(draws.values()) >= DEGRADING_SHARE and min(draws, key=draws.get) == asset_number


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) indices of each run of True in ``flags``."""
    edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist(), strict=True))
