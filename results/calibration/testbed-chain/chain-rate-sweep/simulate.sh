#!/bin/bash
# The model's side of the rate sweep: each measured run's as-measured scenario (its links'
# measured delays and the nodes' measured other work) with the reference profile of then
# (27 Nov, 16 KiB buffers: ../reference-buffer-16k/profile.yaml, what
# profiles/local-haproxy.yaml held when sim-RATE/ was written), simulated for ten times the
# measured window (as a calibration's prediction is), no mesh and sidecar, into sim-RATE/.
cd "$(dirname "$0")"
PROFILE="$(cd ../reference-buffer-16k && pwd)/profile.yaml"
for rate in "$@"; do
  sed -e "s|^profile: .*|profile: $PROFILE|" -e "s/duration_s: 20.0/duration_s: 164.0/" \
    rs-$rate/testbed-chain-seed2-as-measured.yaml > /tmp/rs-sim-$rate.yaml
  meshsim run /tmp/rs-sim-$rate.yaml --mode none --mode sidecar --engine vector --seed 3 \
    --out sim-$rate > /dev/null
  rm /tmp/rs-sim-$rate.yaml
done
echo done
