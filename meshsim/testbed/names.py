"""Names of everything a testbed run creates, all derived from the run's id.

One place decides the names, so a run can be found again and removed by its id alone,
also after the process that made it was killed (`meshsim testbed cleanup`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CGROUP_ROOT", "NETNS_PREFIX", "RUN_ROOT", "RunNames", "new_run_id"]

NETNS_PREFIX = "msim-"
RUN_ROOT = Path("/run/meshsim")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_CONTROLLERS = ("cpuacct", "memory", "cpuset")
RUN_ID = re.compile(r"^[0-9a-f]{8}$")


def new_run_id() -> str:
    return secrets.token_hex(4)


@dataclass(frozen=True)
class RunNames:
    run_id: str

    def __post_init__(self) -> None:
        if not RUN_ID.match(self.run_id):
            raise ValueError(f"not a testbed run id: {self.run_id!r} (expected 8 hex digits)")

    @property
    def prefix(self) -> str:
        return f"{NETNS_PREFIX}{self.run_id}-"

    def netns(self, role: str) -> str:
        """A namespace of this run: 'fabric', 'node-1', 'pod-frontend-0', 'wp-shop'."""
        return f"{self.prefix}{role}"

    @property
    def run_dir(self) -> Path:
        return RUN_ROOT / self.run_id

    def cgroup(self, controller: str, *parts: str) -> Path:
        return CGROUP_ROOT / controller / f"meshsim-{self.run_id}" / Path(*parts)

    def cgroup_roots(self) -> list[Path]:
        return [self.cgroup(c) for c in CGROUP_CONTROLLERS]


def run_id_of_netns(name: str) -> str | None:
    if not name.startswith(NETNS_PREFIX):
        return None
    rid = name[len(NETNS_PREFIX) :].split("-", 1)[0]
    return rid if RUN_ID.match(rid) else None


def run_id_of_cgroup(name: str) -> str | None:
    rid = name.removeprefix("meshsim-")
    return rid if name.startswith("meshsim-") and RUN_ID.match(rid) else None
