"""mm-daemon: a live paper-trading market-maker daemon for crypto venues."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mm-daemon")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
