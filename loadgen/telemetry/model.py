"""Telemetry layer: one sample, the source interface, and the error a source raises when it
cannot work on this machine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Sample:
    """Readings of one device at one instant; ``t_ns`` is this host's ``perf_counter_ns``."""

    t_ns: int
    source: str
    device: str
    values: dict[str, float]

    def to_json_dict(self) -> dict[str, object]:
        return {"t_ns": self.t_ns, "source": self.source, "device": self.device, **self.values}


class SourceUnavailable(Exception):
    """The source cannot run here (no driver, no binary, scrape refused): say why, once."""


class Source(Protocol):
    name: str

    def open(self) -> None:
        """Prepare; raises ``SourceUnavailable`` with the reason if it cannot work here."""
        ...

    def read(self, t_ns: int) -> list[Sample]:
        """Current readings, stamped ``t_ns``. May raise ``SourceUnavailable`` or any error,
        which the sampler counts."""
        ...

    def close(self) -> None: ...
