"""Polling with a back-off: look, and if it is not done yet, wait a little longer each time.

The watch, its local twin and the report's wait for slurmdbd all poll this way:
waits of ``first``, ``first * factor``, ... seconds, at most ``last`` each.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

#: How much longer each wait is than the one before.
BACKOFF = 1.5

Answer = TypeVar("Answer")


def poll_until(
    look: Callable[[], Answer],
    done: Callable[[Answer], bool],
    sleep: Callable[[float], None],
    first: float,
    last: float = math.inf,
    *,
    give_up_after: float = math.inf,
) -> Answer:
    """Call ``look`` until ``done`` says yes of its answer; return that answer.

    Between looks, sleep ``first`` seconds, then ``BACKOFF`` times longer each
    time, at most ``last``. Once the sleeps add up to ``give_up_after``
    seconds or more, the next answer is returned, done or not.
    """
    interval, waited = first, 0.0
    while True:
        answer = look()
        if done(answer) or waited >= give_up_after:
            return answer
        sleep(interval)
        waited += interval
        interval = min(interval * BACKOFF, last)
