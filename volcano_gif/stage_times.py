"""Wall-clock seconds and peak memory per pipeline stage, for logs and the benchmark."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def peak_memory_mib() -> float:
    """This process's peak resident memory so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_peak_mib() -> float:
    """The largest peak of the child processes waited for so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


class StageTimes(dict[str, float]):
    """``{stage: seconds}``; stages that run concurrently are timed separately.

    ``peaks_mib`` holds the peak resident memory of the processes that did the
    work, by name (for example ``ffmpeg gif``): each process's own peak.
    """

    def __init__(self) -> None:
        super().__init__()
        self.peaks_mib: dict[str, float] = {}

    def peak(self, name: str, mib: float) -> None:
        """Note that process ``name`` peaked at ``mib`` (the largest note is kept)."""
        self.peaks_mib[name] = max(mib, self.peaks_mib.get(name, 0.0))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - began

    def timed(self, name: str, function: Callable[P, T]) -> Callable[P, T]:
        """``function`` wrapped so that each call adds to stage ``name``."""

        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            with self.stage(name):
                return function(*args, **kwargs)

        return wrapper

    def summary(self) -> str:
        return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.items())

    def memory_summary(self) -> str:
        return ", ".join(f"{name} {mib:.0f} MiB" for name, mib in self.peaks_mib.items())
