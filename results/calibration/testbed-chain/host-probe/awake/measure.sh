#!/bin/bash
# The echo app alone (../../idle-gap/tp-100-256.yaml: no mesh, 100/s, 20 s) measured twelve
# times, alternately with the host's two cores left to idle and kept awake by a busy loop
# at SCHED_IDLE on each (spin.py: runs only when nothing else wants the core). Under the
# heavy-work lock: flock /tmp/meshsim-heavy.lock ./measure.sh
cd "$(dirname "$0")/../../../../.."  # the repository root
D=results/calibration/testbed-chain/host-probe/awake
for i in $(seq -w 1 12); do
  if [ $((10#$i % 2)) = 0 ]; then
    python $D/spin.py 0 40 & S0=$!; python $D/spin.py 1 40 & S1=$!
  fi
  meshsim measure results/calibration/testbed-chain/idle-gap/tp-100-256.yaml --mode none --out $D/runs/$i
  if [ $((10#$i % 2)) = 0 ]; then kill $S0 $S1; wait $S0 $S1 2>/dev/null; fi
done
