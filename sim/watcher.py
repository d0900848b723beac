"""A simulated participant's attention: a thread that looks at the devices every tick."""

from __future__ import annotations

import threading


class Watcher:
    """Calls :meth:`tick` every ``tick_real_s`` real seconds between start() and stop()."""

    def __init__(self, name: str, tick_real_s: float = 0.001) -> None:
        self.tick_real_s = tick_real_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self):  # noqa: ANN201 - returns self (the subclass)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def tick(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.tick_real_s):
            self.tick()
