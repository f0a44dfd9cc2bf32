#!/bin/bash
# HAProxy's buffer and the chain's 32 KiB step: ../cs-100-32768.yaml (the chain at 100/s,
# 32 KiB every body), no mesh and sidecar, alternately with the testbed as committed
# (tune.bufsize left at HAProxy's default, 16 KiB) and with a scratch copy of the tree whose
# HAProxy configurations set `tune.bufsize 65536` in their global section (one line added
# after `maxconn 4096` in meshsim/testbed/dataplane.py, profiles/ copied alongside), each
# run under the heavy-work lock. BIG names that copy's root.
cd "$(dirname "$0")"
Y=../cs-100-32768.yaml
# in the order measured (runs 2 and 3 failed before loading: the copy lacked profiles/)
for run in default-1 default-4 bufsize-64k-5 default-6 bufsize-64k-7 default-8 \
  bufsize-64k-9 default-10 bufsize-64k-11; do
  if [ "${run%-*}" = default ]; then P=../../../../..; else P=$BIG; fi
  PYTHONPATH=$P flock /tmp/meshsim-heavy.lock python -m meshsim measure $Y \
    --mode none --mode sidecar --out $run
done
