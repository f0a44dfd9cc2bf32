#!/bin/bash
# Twelve measurements of the echo app alone (the idle-gap sweep's two-pod shape at 100/s, no
# mesh, 20 s with 4 s warm-up), each with the host probes (probe.py, on host core 1, where
# node-2 and the echo app run) run right before and right after it. Run under the heavy-work
# lock with nothing else running: flock /tmp/meshsim-heavy.lock ./measure.sh
cd "$(dirname "$0")/../../../.."  # the repository root
D=results/calibration/testbed-chain/host-probe
rm -f $D/probes.jsonl
for i in $(seq -w 1 12); do
  python $D/probe.py 1 >> $D/probes.jsonl
  meshsim measure results/calibration/testbed-chain/idle-gap/tp-100-256.yaml --mode none --out $D/runs/$i
  python $D/probe.py 1 >> $D/probes.jsonl
done
