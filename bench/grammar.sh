#!/usr/bin/env bash
# Grammar-constrained decoding, kiln against llama.cpp, on the same GGUF files and grammar (bench/README.md):
#   kiln bench MODEL -p 0 -n N -t 1 --grammar G   (sampled decoding with and without the grammar, runs alternating)
#   llama-cli -m MODEL -n N -t 1 [--grammar-file G] (sampling time with the grammar − without = its cost per token)
# Models: make them first with  npx tsx bench/make-models.ts --shape vocab49k-small,vocab152k-small --type F16
#                                npx tsx bench/make-models.ts --shape smollm2-135M --type Q8_0
#   bash bench/grammar.sh [N] [GRAMMAR]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-64}
GRAMMAR=${2:-bench/grammars/json-lines.gbnf}
LLAMA=${LLAMA:-../shared/peers/llama.cpp/bin-native/llama-cli}
MODELS=(../shared/conformance/models/kq-f32.gguf bench/models/vocab49k-small-F16.gguf bench/models/vocab152k-small-F16.gguf bench/models/smollm2-135M-Q8_0.gguf)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for model in "${MODELS[@]}"; do
  [ -f "$model" ] || { echo "missing $model"; continue; }
  echo "== $(basename "$model")"
  npx tsx src/cli/run-dev.ts bench "$model" -p 0 -n "$N" -r 3 -t 1 --grammar "$GRAMMAR" | grep -A3 '^grammar'
  for grammar in "" "--grammar-file $GRAMMAR"; do
    line=$("$LLAMA" -m "$model" -p x -n "$N" $grammar -no-cnv --ignore-eos --temp 1 --top-k 0 --top-p 1 --min-p 0 --seed 1 -t 1 --no-warmup 2>&1 \
      | grep -E 'sampling time|  eval time' | sed -E 's/.*= *([0-9.]+) ms \/ *([0-9]+) runs.*/\1 \2/' | tr '\n' ' ')
    echo "  llama.cpp ${grammar:-(no grammar)}: sampling ms / runs, eval ms / runs: $line"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
