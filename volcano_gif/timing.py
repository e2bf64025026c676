"""Wall-clock seconds per pipeline stage, for logs and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class StageTimes(dict[str, float]):
    """``{stage: seconds}``; stages that run concurrently are timed separately."""

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
