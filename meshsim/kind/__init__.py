"""The kind backend: measure a scenario on a kind cluster running Istio (DESIGN.md 5)."""

from meshsim.kind.commands import KindError
from meshsim.kind.measure import (
    ENGINE,
    KindRun,
    cleanup_kind,
    kind_clusters,
    kind_plan,
    kind_software,
    measure_kind,
    shared_cluster,
)

__all__ = [
    "ENGINE",
    "KindError",
    "KindRun",
    "cleanup_kind",
    "kind_clusters",
    "kind_plan",
    "kind_software",
    "measure_kind",
    "shared_cluster",
]
