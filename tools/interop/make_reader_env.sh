#!/usr/bin/env bash
# Build .venv-tf457: a transformers 4.57 reader with no qcompress in it, for the slow interop test
# (tests/interop/test_transformers4_reader.py). Many serving stacks still pin transformers 4.x
# (Optimum's ONNX tooling needs < 4.58) while qcompress exports with 5.x; this env proves an
# artifact's model/ loads there and gives the same logits.
# torch is pinned: 2.13.0 is a local CPU build; an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
ENV_DIR=.venv-tf457  # the path tests/interop/test_transformers4_reader.py looks for
"$PYTHON" -m venv "$ENV_DIR"
"$ENV_DIR/bin/pip" install --quiet --upgrade pip
"$ENV_DIR/bin/pip" install --quiet torch==2.13.0
"$ENV_DIR/bin/pip" install --quiet transformers==4.57.6 safetensors tokenizers numpy
"$ENV_DIR/bin/python" -c "import torch, transformers; print('transformers', transformers.__version__, 'torch', torch.__version__)"
echo "reader env ready: $ENV_DIR"
