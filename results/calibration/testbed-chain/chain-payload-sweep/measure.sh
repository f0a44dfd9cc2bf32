#!/bin/bash
# The chain's payload sweep: scenarios/testbed-chain.yaml at RATE requests/s (default 100;
# constant arrivals, 20 s with 4 s warm-up, as in the calibration grid), no mesh and sidecar,
# one `meshsim measure` per body size under the heavy-work lock, sizes in the order given
# (not monotone, so that a drift of the host does not look like a slope). SUFFIX names a
# repeat's folders.
cd "$(dirname "$0")/../../../.."  # the repository root
D=results/calibration/testbed-chain/chain-payload-sweep
RATE=${RATE:-100}
for bytes in "$@"; do
  PYTHONPATH=. flock /tmp/meshsim-heavy.lock python -m meshsim measure $D/cs-$RATE-$bytes.yaml \
    --mode none --mode sidecar --out $D/cs-$RATE-$bytes${SUFFIX:-}
done
echo done
