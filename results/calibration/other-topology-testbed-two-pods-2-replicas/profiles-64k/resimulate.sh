#!/bin/bash
# Predict each 64 KiB-buffer measurement of the two-replica shape with each 64 KiB-buffer
# calibration's profile: no measuring, `--reuse` of the measured runs. From the top of the
# repository:  bash results/calibration/other-topology-testbed-two-pods-2-replicas/profiles-64k/resimulate.sh
set -euo pipefail
R=results/calibration/testbed-chain
SHAPE=results/calibration/other-topology-testbed-two-pods-2-replicas
HERE=$SHAPE/profiles-64k
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for m in bufsize64k bufsize64k-2 bufsize64k-3; do
  for p in 2026-11-27-night-bufsize64k 2026-11-27-night-bufsize64k-2 2026-11-27-2218 \
      2026-11-27-2251 2026-11-27-2311 2026-11-27-2332; do
    # 2026-11-27-2218: the reference of then (at the top of $R when these files were written)
    tag=$p; [ "$p" = 2026-11-27-2218 ] && tag=reference
    o=$OUT/$m/$tag; mkdir -p "$o"
    cp -r "$SHAPE/$m/measured" "$o/"
    python bench/calibration_other_topology.py --duration 60 --reuse --out "$o" \
      --profile "$PWD/$R/$p/profile.yaml" > "$o/out.txt"
    cp "$o/compare.txt" "$HERE/$m--$tag.txt"
    echo "$m $tag $(grep -E '^ +(p50|p99|cpu|memory):' "$o/out.txt" \
      | sed -E 's/.*(p50|p99|cpu|memory): median \|error\| ([0-9.]+%).*/\1 \2/' | tr '\n' ' ')"
  done
done
