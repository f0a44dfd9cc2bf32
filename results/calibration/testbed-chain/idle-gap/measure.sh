#!/bin/bash
cd "$(dirname "$0")/../../../.."  # the repository root; tp-50-256-a was measured before, alike
for spec in 200-256 25-256 100-32768 50-32768 70-256 25-32768 100-256 200-32768 70-32768 50-256 ; do
  PYTHONPATH=. flock /tmp/meshsim-heavy.lock python -m meshsim measure results/calibration/testbed-chain/idle-gap/tp-$spec.yaml --mode none --out results/calibration/testbed-chain/idle-gap/tp-$spec-b
done
for spec in 25-256 200-256 25-32768 200-32768; do
  PYTHONPATH=. flock /tmp/meshsim-heavy.lock python -m meshsim measure results/calibration/testbed-chain/idle-gap/tp-$spec.yaml --mode sidecar --mode ambient --out results/calibration/testbed-chain/idle-gap/tp-$spec-mesh
done
echo done
