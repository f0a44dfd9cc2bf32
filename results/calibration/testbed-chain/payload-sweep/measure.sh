#!/bin/bash
# The payload sweep: the two-pod shape at 200/s (the node stays awake, ../idle-gap), every
# mode, one `meshsim measure` per payload size, each under the heavy-work lock. Sizes in an
# order that is not monotone, so a drift of the host over the sweep does not look like a slope.
cd "$(dirname "$0")/../../../.."  # the repository root
D=results/calibration/testbed-chain/payload-sweep
for bytes in "$@"; do
  PYTHONPATH=. flock /tmp/meshsim-heavy.lock python -m meshsim measure $D/ps-200-$bytes.yaml \
    --mode none --mode sidecar --mode ambient --mode ambient-waypoint --out $D/ps-200-$bytes${SUFFIX:-}
done
echo done
