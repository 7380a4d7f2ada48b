#!/usr/bin/env bash
# The benchmark table of the kernels issue: every generated model (bench/make-models.ts) with 2 and 1 threads,
# pp512 and tg128, median of 3 runs. Usage: bash bench/run-all.sh [threads...]   (default: 2 1)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=("${@:-2 1}")
for t in ${threads[@]}; do
  for shape in stories15M smollm2-135M tinyllama-1.1B; do
    for type in Q8_0 Q4_0 Q4_K_M F16; do
      model="bench/models/$shape-$type.gguf"
      [ -f "$model" ] || { echo "missing $model (run: npx tsx bench/make-models.ts)" >&2; continue; }
      echo "# $(date -u +%H:%M:%S) load average: $(cut -d' ' -f1-3 /proc/loadavg)"
      npx tsx src/cli/run-dev.ts bench "$model" -p 512 -n 128 -r 3 -t "$t"
    done
  done
done
