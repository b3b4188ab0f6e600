#!/usr/bin/env bash
# up-down.sh: wall time of `minik up` and `minik down` for several sizes, and of the same
# topology built and removed by bench/ip-script.sh, in the same run. Prints a Markdown
# table (median and min of RUNS runs) to paste into BENCHMARKS.md.
# Run as root after `make build` (uses .build/release).
set -euo pipefail
cd "$(dirname "$0")/.."
MINIK=${MINIK:-.build/release/minik}
PAUSE=${PAUSE:-.build/images/pause/rootfs/pause}
RUNS=${RUNS:-5}
SETTLE=${SETTLE:-2}
SIZES=${SIZES:-"3:30 3:90 10:300"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; $MINIK down --name bench >/dev/null 2>&1 || true; bench/ip-script.sh down bench 0 0 >/dev/null 2>&1 || true' EXIT

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
stats() { sort -n | awk '{a[NR]=$1} END {printf "%d / %d", a[int((NR+1)/2)], a[1]}'; }

echo "| topology | minik up (ms, median / min) | minik down | ip script up | ip script down |"
echo "|---|---|---|---|---|"
for size in $SIZES; do
  nodes=${size%%:*} pods=${size##*:}
  bench/gen-spec.sh bench "$nodes" "$pods" > "$tmp/spec.yaml"
  : > "$tmp/up"; : > "$tmp/down"; : > "$tmp/ipup"; : > "$tmp/ipdown"
  for ((r = 0; r < RUNS; r++)); do
    t0=$(now); $MINIK up -q "$tmp/spec.yaml"; t1=$(now)
    $MINIK down --name bench >/dev/null; t2=$(now)
    ms "$t0" "$t1" >> "$tmp/up"; ms "$t1" "$t2" >> "$tmp/down"
    sleep "$SETTLE" # let the kernel finish freeing the namespaces before the next run
    t0=$(now); bench/ip-script.sh up bench "$nodes" "$pods" "$PAUSE"; t1=$(now)
    bench/ip-script.sh down bench "$nodes" "$pods"; t2=$(now)
    ms "$t0" "$t1" >> "$tmp/ipup"; ms "$t1" "$t2" >> "$tmp/ipdown"
    sleep "$SETTLE"
  done
  echo "| $nodes nodes, $pods pods | $(stats < "$tmp/up") | $(stats < "$tmp/down") | $(stats < "$tmp/ipup") | $(stats < "$tmp/ipdown") |"
done
