#!/usr/bin/env bash
# The GPU check in one command (issue 17): on a CUDA machine, in about 8 minutes,
#   1. the CUDA-marked tests (every method fits, resumes, evaluates and exports from the GPU),
#   2. the train suite: lora, qpa-lora, qtha and a bare PEFT loop at 4x128 and 16x512 tokens,
#   3. the generator suite: every exact simulator of the QPA circuit from N=8 to N=24,
# on a random-initialised model of SmolLM2-135M's shape (tools/bench/random_model.py). Tables and
# JSON go to OUT (default runs/gpu-check); the GPU's name is recorded in every suite.
#
#   bash tools/gpu_check.sh [OUT]          # PYTHON=... to use another interpreter (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu-check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA GPU visible to torch: run this on a GPU machine')"
"$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0), '| torch', torch.__version__)" | tee "$OUT/gpu.txt"

echo "== CUDA tests"
"$PY" -m pytest -q -p no:cacheprovider -m cuda tests/end_to_end/test_cuda.py tests/training/test_device_guard.py 2>&1 | tee "$OUT/tests.txt" | tail -3

echo "== model"
[ -d "$OUT/random/model" ] || "$PY" tools/bench/random_model.py "$OUT/random" --sentences 20000 >/dev/null

echo "== train suite"
"$PY" tools/bench/run.py train --device cuda --out "$OUT" --model "$OUT/random/model" --data "$OUT/random/corpus.txt" \
  --methods lora qpa-lora qtha --shapes 4x128 16x512 --train-steps 8 --rounds 1 --threads 4 | tail -n 30

echo "== generator suite"
"$PY" tools/bench/run.py generator --device cuda --out "$OUT" --qubits 8 12 16 20 24 --budget-s 2 --max-step-s 5 | tail -n 20
echo "tables: $OUT/train.md $OUT/generator.md"
