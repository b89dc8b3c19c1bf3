"""Exclusive transfer locks: one writer per `-partial` file, across tasks, threads and processes.

A lock is `flock(2)` on `<models>/.locks/<key>.lock`. flock locks belong to an open file description,
so two opens in one process exclude each other just as two processes do, and the kernel drops the
lock when its holder dies (a killed pull never leaves a stale lock). The holder unlinks the file
before unlocking, so none accumulate; a taker therefore checks, after flock succeeds, that the path
still names the inode it locked, and starts over on a fresh file when it does not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class TransferLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never blocks."""
        if self._fd >= 0:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = -1
            if current == os.fstat(fd).st_ino:
                self._fd = fd
                return True
            os.close(fd)  # the previous holder unlinked this file on release: lock the new one

    def release(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = -1

    def is_held_elsewhere(self) -> bool:
        """True while another holder has it (a probe that takes and drops the lock otherwise)."""
        if self._fd >= 0:
            return False
        if not self.try_acquire():
            return True
        self.release()
        return False
