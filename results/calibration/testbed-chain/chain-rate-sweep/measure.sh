#!/bin/bash
# The chain's rate sweep: scenarios/testbed-chain.yaml with 256 B bodies (constant arrivals,
# 20 s with 4 s warm-up, as in the calibration grid) at each rate given, no mesh and
# sidecar, one `meshsim measure` per rate under the heavy-work lock, in the order given.
# SUFFIX names a repeat's folders.
cd "$(dirname "$0")/../../../.."  # the repository root
D=results/calibration/testbed-chain/chain-rate-sweep
for rate in "$@"; do
  PYTHONPATH=. flock /tmp/meshsim-heavy.lock python -m meshsim measure $D/rs-$rate.yaml \
    --mode none --mode sidecar --out $D/rs-$rate${SUFFIX:-}
done
echo done
