"""qst-station: instrument controller for quantitative sensory testing."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qst-station")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
