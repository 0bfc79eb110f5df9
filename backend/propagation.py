"""Re-propose a task's episodes after an acceptance, debounced, off the request path.

Accepting an episode changes the exemplar set of its task, so every episode of
that task a person has not accepted deserves a new proposal. A reviewer accepting
five episodes in a minute should cause one re-proposal, not five, and an
acknowledgement must never wait for any of it: `touch` only notes the task and
returns; a timer thread hands the task to the engine queue once no acceptance has
touched it for `delay` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("robo.backend.propagation")


class Debouncer:
    """Calls `fire(key)` once per key, `delay` seconds after the last `touch(key)`."""

    def __init__(self, delay: float, fire: Callable[[tuple[str, str]], None]) -> None:
        self.delay = delay
        self._fire = fire
        self._due: dict[tuple[str, str], float] = {}
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="backend-propagation", daemon=True)
        self._thread.start()

    def touch(self, key: tuple[str, str]) -> None:
        with self._cv:
            self._due[key] = time.monotonic() + self.delay
            self._cv.notify()

    @property
    def pending(self) -> int:
        with self._cv:
            return len(self._due)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closed:
                    now = time.monotonic()
                    ready = [k for k, t in self._due.items() if t <= now]
                    if ready:
                        for k in ready:
                            del self._due[k]
                        break
                    wait = min(self._due.values()) - now if self._due else None
                    self._cv.wait(wait)
                if self._closed:
                    return
            for key in ready:
                try:
                    self._fire(key)
                except Exception:  # a failed hand-off must not stop later ones
                    log.exception("re-proposal of %s failed to start", key)
