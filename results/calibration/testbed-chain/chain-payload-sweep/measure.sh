#!/bin/bash
# The chain's payload sweep: scenarios/testbed-chain.yaml at 100/s (constant arrivals, 20 s
# with 4 s warm-up, as in the calibration grid), no mesh and sidecar, one `meshsim measure`
# per body size under the heavy-work lock, sizes in a non-monotone order.
cd "$(dirname "$0")/../../../.."  # the repository root
D=results/calibration/testbed-chain/chain-payload-sweep
for bytes in "$@"; do
  PYTHONPATH=. flock /tmp/meshsim-heavy.lock python -m meshsim measure $D/cs-100-$bytes.yaml \
    --mode none --mode sidecar --out $D/cs-100-$bytes${SUFFIX:-}
done
echo done
