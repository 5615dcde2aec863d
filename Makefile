# Two commands for a newcomer:  `make demo`  and  `make test`.
# Both create a virtual environment in .venv (torch 2.14.1 + torchvision 0.29.1 come from the
# machine's local wheels through plain pip) and install mmgen in editable mode.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mmgen-installed

.PHONY: setup demo demo-train test lint bench bench-orders bench-gpu clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/mmgen demo

demo-train: setup
	$(BIN)/mmgen demo --train

test: setup
	$(BIN)/pytest -q -n 2  # two workers (pytest-xdist), one torch thread each

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python tools/bench_import.py

# the order benchmark (tools/bench_orders.py): trains every order in BENCH_ORDERS by its recipe in
# configs/orders/ unless runs/orders/<order>/final exists (an interrupted run resumes from its
# latest checkpoint), then measures them all; hours on a CPU, so run it in the background
BENCH_ORDERS ?= next_token next_scale_window token_shuffle
bench-orders: setup
	@for o in $(BENCH_ORDERS); do \
	  [ -d runs/orders/$$o/final ] && continue; \
	  resume=$$([ -d runs/orders/$$o/checkpoints ] && echo "--resume-from-checkpoint latest"); \
	  $(BIN)/mmgen train model --config configs/orders/$$o.yaml $$resume || exit 1; \
	done
	$(BIN)/python tools/bench_orders.py --runs runs/orders --orders $(BENCH_ORDERS)

# on a CUDA machine: correctness, attention targets, decode and training (logs in runs/bench-gpu);
# uses .venv when there is one, else $(PYTHON) with mmgen importable
bench-gpu:
	PYTHON="$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))" tools/bench_gpu.sh runs/bench-gpu

clean:
	rm -rf runs eval_shapes demo_grid.png
