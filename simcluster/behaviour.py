"""How simulated usage evolves with time.

Every behaviour is a pure function of time, so a counter at any moment is computed directly
(no stepping, no hidden state): tests can jump the clock anywhere and the same seed always gives
the same numbers. Times here are seconds relative to the cluster's epoch (floats; may be negative
for things that happened before the simulation started).

A *profile* gives the load level (a multiplier of a container's base CPU rate) and its exact
integral, from which cumulative counters follow: ``core_seconds = base * integral(t0, t1)``.
Analytic integrals keep counters exactly consistent with rates and strictly monotonic.

Exception tree::

    BehaviourError(ValueError)   a behaviour was built with impossible parameters
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


class BehaviourError(ValueError):
    """A behaviour's parameters are impossible (non-positive period, level below zero...)."""


class Profile(Protocol):
    """Load level over time: 1.0 is the container's base rate."""

    def level(self, t: float) -> float: ...

    def integral(self, t0: float, t1: float) -> float:
        """Exact integral of ``level`` over ``[t0, t1]`` (0 when ``t1 <= t0``)."""
        ...


@dataclass(frozen=True, slots=True)
class Steady:
    """Constant load with a slow sinusoidal wobble, so steady numbers still move a little."""

    wobble: float = 0.05
    period: float = 300.0
    phase: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.wobble < 1.0:
            raise BehaviourError(f"Steady.wobble must be in [0, 1), got {self.wobble}")
        if self.period <= 0:
            raise BehaviourError(f"Steady.period must be positive, got {self.period}")

    def level(self, t: float) -> float:
        return 1.0 + self.wobble * math.sin(2.0 * math.pi * t / self.period + self.phase)

    def _antiderivative(self, t: float) -> float:
        omega = 2.0 * math.pi / self.period
        return t - self.wobble / omega * math.cos(omega * t + self.phase)

    def integral(self, t0: float, t1: float) -> float:
        if t1 <= t0:
            return 0.0
        return self._antiderivative(t1) - self._antiderivative(t0)


@dataclass(frozen=True, slots=True)
class Ramp:
    """Level 1 until ``start``, rises linearly to ``peak`` over ``duration``, then holds."""

    start: float
    duration: float
    peak: float

    def __post_init__(self) -> None:
        if self.duration <= 0:
            raise BehaviourError(f"Ramp.duration must be positive, got {self.duration}")
        if self.peak < 0:
            raise BehaviourError(f"Ramp.peak must not be negative, got {self.peak}")

    def level(self, t: float) -> float:
        if t <= self.start:
            return 1.0
        if t >= self.start + self.duration:
            return self.peak
        return 1.0 + (self.peak - 1.0) * (t - self.start) / self.duration

    def _antiderivative(self, t: float) -> float:
        # Integral of (level - 1) from `start`, plus t: exact and piecewise smooth.
        rise = min(max(t - self.start, 0.0), self.duration)
        extra = (self.peak - 1.0) * rise * rise / (2.0 * self.duration)
        held = max(t - self.start - self.duration, 0.0)
        return t + extra + (self.peak - 1.0) * held

    def integral(self, t0: float, t1: float) -> float:
        if t1 <= t0:
            return 0.0
        return self._antiderivative(t1) - self._antiderivative(t0)


@dataclass(frozen=True, slots=True)
class Spike:
    """Level 1, jumping to ``height`` for ``duration`` seconds once every ``period``."""

    period: float
    duration: float
    height: float
    phase: float = 0.0

    def __post_init__(self) -> None:
        if self.period <= 0 or not 0 < self.duration <= self.period:
            raise BehaviourError(
                f"Spike needs 0 < duration <= period, got duration={self.duration} "
                f"period={self.period}"
            )
        if self.height < 0:
            raise BehaviourError(f"Spike.height must not be negative, got {self.height}")

    def level(self, t: float) -> float:
        into = (t - self.phase) % self.period
        return self.height if into < self.duration else 1.0

    def _spiking_time(self, t: float) -> float:
        cycles = math.floor((t - self.phase) / self.period)
        into = (t - self.phase) - cycles * self.period
        return cycles * self.duration + min(into, self.duration)

    def integral(self, t0: float, t1: float) -> float:
        if t1 <= t0:
            return 0.0
        spiking = self._spiking_time(t1) - self._spiking_time(t0)
        return (t1 - t0) + (self.height - 1.0) * spiking


@dataclass(frozen=True, slots=True)
class Restarts:
    """A container restarts ``phase`` seconds after its pod is created, then every ``every``."""

    every: float
    phase: float

    def __post_init__(self) -> None:
        if self.every <= 0 or self.phase <= 0:
            raise BehaviourError(
                f"Restarts needs every > 0 and phase > 0, got every={self.every} phase={self.phase}"
            )

    def count(self, created: float, t: float) -> int:
        """How many restarts happened in ``(created, t]``."""
        first = created + self.phase
        if t < first:
            return 0
        return math.floor((t - first) / self.every) + 1

    def restart_time(self, created: float, n: int) -> float:
        """When restart number ``n`` (1-based) happened."""
        return created + self.phase + (n - 1) * self.every


@dataclass(frozen=True, slots=True)
class Churn:
    """A replica slot whose pod is replaced by a new one every ``every`` seconds."""

    every: float
    phase: float = 0.0

    def __post_init__(self) -> None:
        if self.every <= 0:
            raise BehaviourError(f"Churn.every must be positive, got {self.every}")

    def generation(self, t: float) -> int:
        return math.floor((t - self.phase) / self.every)

    def created(self, generation: int) -> float:
        return self.phase + generation * self.every


def warm_up(age: float, seconds: float = 60.0, initial: float = 0.3) -> float:
    """Fraction of its steady memory a container holds ``age`` seconds after (re)start."""
    if age <= 0:
        return initial
    if age >= seconds:
        return 1.0
    return initial + (1.0 - initial) * age / seconds


def sample_time(t: float, interval: int, offset: int) -> float:
    """The last housekeeping instant at or before ``t``: stats only change at these instants."""
    return math.floor((t - offset) / interval) * interval + offset
