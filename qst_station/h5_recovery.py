"""Open a session file that a killed writer left behind.

The writer uses HDF5's single-writer/multiple-reader (SWMR) mode, so the file stays valid
whatever moment the process dies at, but HDF5 leaves the superblock's "open for writing"
flags set: readers must then pass ``swmr=True``, and appending needs the flags cleared.
:func:`clear_status_flags` clears them the way the HDF5 tool ``h5clear -s`` does (the file
access property ``clear_status_flags``), through the HDF5 library h5py itself has loaded.
A sidecar ``<file>.writing`` lock tells a live writer from a dead one.
"""

from __future__ import annotations

import ctypes
import fcntl
import glob
import os
from pathlib import Path

import h5py
from h5py import h5f, h5p


class RecoveryError(RuntimeError):
    """The status flags could not be cleared."""


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".writing")


def writer_alive(path: Path) -> bool:
    """True while a writer holds the sidecar lock of ``path``."""
    lock = lock_path(path)
    if not lock.exists():
        return False
    with open(lock) as handle:  # read-only is enough to try the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def opens_plainly(path: Path) -> bool:
    try:
        with h5py.File(path, "r", locking=False):
            return True
    except OSError:
        return False


def clear_status_flags(path: Path, lock_is_mine: bool = False) -> None:
    """Clear the write flags of a file no writer holds (``h5clear -s``); RecoveryError if not.

    ``lock_is_mine``: the caller holds the sidecar lock (a writer about to continue the file).
    """
    if not lock_is_mine and writer_alive(path):
        raise RecoveryError(f"{path}: a writer is still recording into it")
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_file_locking(False, True)
    flag = ctypes.c_bool(True)
    setter = _hdf5().H5Pset
    setter.argtypes = [ctypes.c_int64, ctypes.c_char_p, ctypes.c_void_p]
    setter.restype = ctypes.c_int
    if setter(fapl.id, b"clear_status_flags", ctypes.byref(flag)) < 0:
        raise RecoveryError(f"{path}: this HDF5 library cannot clear status flags; "
                            "run `h5clear -s` on it or open it with swmr=True")
    h5f.open(os.fsencode(path), h5f.ACC_RDWR, fapl=fapl).close()
    if not lock_is_mine:
        lock_path(path).unlink(missing_ok=True)


def _hdf5() -> ctypes.CDLL:
    """The libhdf5 that h5py uses (the one already mapped into this process)."""
    candidates: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            candidates = sorted({line.split()[-1] for line in maps
                                 if "libhdf5" in line and "_hl" not in line.rsplit("/", 1)[-1]})
    except OSError:
        pass
    libs = Path(h5py.__file__).parent.parent / "h5py.libs"
    candidates += sorted(glob.glob(str(libs / "libhdf5-*")))
    for name in candidates:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise RecoveryError("cannot find the HDF5 library h5py uses; run `h5clear -s` on the file")
