"""meshsim: what a service mesh costs a cluster, sidecars versus ambient, simulated and measured."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("meshsim")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
