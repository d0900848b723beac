"""A transport that expects exact (write, reply) pairs, in order: byte-exact driver tests."""

from __future__ import annotations

import threading
import time


class ScriptedTransport:
    """Each write must equal the next expected bytes; its reply is then made readable.

    ``assert_done()`` fails unless every pair was used.
    """

    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self.pairs = list(pairs)
        self.used = 0
        self._out = bytearray()
        self._lock = threading.Lock()

    def expect(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self.pairs += pairs

    def write(self, data: bytes) -> None:
        assert self.used < len(self.pairs), f"unexpected extra write {data!r}"
        want, reply = self.pairs[self.used]
        assert data == want, f"pair {self.used}: wrote {data!r}, expected {want!r}"
        self.used += 1
        with self._lock:
            self._out += reply

    def read(self) -> bytes:
        with self._lock:
            data, self._out = bytes(self._out), bytearray()
        if not data:
            time.sleep(0.002)
        return data

    def close(self) -> None:
        pass

    def assert_done(self) -> None:
        left = self.pairs[self.used :]
        assert not left, f"{len(left)} expected pairs never used, first: {left[0]!r}"
