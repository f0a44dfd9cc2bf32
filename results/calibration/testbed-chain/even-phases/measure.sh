#!/bin/bash
# The idle-gap sweep's two-pod settings (../idle-gap/tp-RATE-256.yaml: no mesh, constant
# arrivals, 256 B, 20 s with 4 s warm-up) measured again with the load generator's paced
# users at even phases (28 Nov): each rate twice, up then down.
cd "$(dirname "$0")/../../../.."  # the repository root
for pass in a b; do
  rates="25 50 70 100 200"; [ $pass = b ] && rates="200 100 70 50 25"
  for rate in $rates; do
    flock /tmp/meshsim-heavy.lock meshsim measure results/calibration/testbed-chain/idle-gap/tp-$rate-256.yaml \
      --mode none --out results/calibration/testbed-chain/even-phases/tp-$rate-256-$pass
  done
done
echo done
