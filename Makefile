# Two commands for a newcomer:  `make demo`  and  `make test`.
# Both create a virtual environment in .venv (torch 2.14.1 + torchvision 0.29.1 come from the
# machine's local wheels through plain pip) and install mmgen in editable mode.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mmgen-installed

.PHONY: setup demo demo-train test lint bench bench-orders train-flagship train-t2v train-t2v-more train-t2v-alternate bench-gpu clean

# $(call train_run,CONFIG,RUN_DIR,ARGS): `mmgen train` CONFIG into RUN_DIR (with ARGS), skipped
# when RUN_DIR/final exists and resumed from its latest checkpoint when it has checkpoints
train_run = [ -d $(2)/final ] || $(BIN)/mmgen train model --config $(1) --output-dir $(2) $(3) $$([ -d $(2)/checkpoints ] && echo "--resume-from-checkpoint latest")

# $(call train_recipes,CONFIG_PREFIX,RUN_PREFIX,NAMES[,ARGS]): train_run CONFIG_PREFIX<name>.yaml
# into RUN_PREFIX<name> (the recipe's output_dir) for every name in order (each with ARGS)
define train_recipes
@for n in $(3); do \
  $(call train_run,$(1)$$n.yaml,$(2)$$n,$(4)) || exit 1; \
done
endef

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
	$(call train_recipes,configs/orders/,runs/orders/,$(BENCH_ORDERS))
	$(BIN)/python tools/bench_orders.py --runs runs/orders --orders $(BENCH_ORDERS)

# the flagship `shapes-t2i` (issue 12), from scratch on 2 CPU cores in one sitting: the generator
# (configs/shapes_t2i_flagship_generator.yaml, the 100k images encoded into the shared cache on
# the way), then its captioning scorer (configs/shapes_t2i_flagship_scorer.yaml) on the same cache
# entry, then the eval of the export at its default sampling (logs in
# runs/shapes_t2i_flagship_<part>). Install it with
#   python tools/install_builtin.py --source runs/shapes_t2i_flagship_scorer/final \
#     --name shapes-t2i --weights-dtype float16
# A second run with other seeds (both parts; the same data): move runs/shapes_t2i_flagship_*
# aside, then `make train-flagship FLAGSHIP_SEED=1`. Both recipes train in bf16 + compile; on a
# CPU where `tools/bench_train.py --cpu` shows bf16 slower than float32, FLAGSHIP_PRECISION=no
# (passed as --mixed-precision; unset, the recipes' own precision).
FLAGSHIP_SEED ?= 0
FLAGSHIP_PRECISION ?=
train-flagship: setup
	$(call train_recipes,configs/shapes_t2i_flagship_,runs/shapes_t2i_flagship_,generator scorer,--seed $(FLAGSHIP_SEED) $(if $(FLAGSHIP_PRECISION),--mixed-precision $(FLAGSHIP_PRECISION)))
	$(BIN)/mmgen eval shapes --model runs/shapes_t2i_flagship_scorer/final --num-prompts 400 \
	  --seed 0 --out-dir runs/shapes_t2i_flagship_scorer/eval

# text-to-video on moving-shapes (issue 15), the built-in's recipe: first frames, then clips
# with one-frame sequences beside them (`init_from` the stage before), about 2.5 h on 2 CPU
# cores with the encoding (logs in runs/moving_shapes_t2v_<stage>), then the eval. The longer
# alternating chain (5.8 h, clips 0.605): T2V_STAGES="frame0_head scales frame0_ft clips_ft"
T2V_STAGES ?= frame0_head clips_short
train-t2v: setup
	$(call train_recipes,configs/moving_shapes_t2v_,runs/moving_shapes_t2v_,$(T2V_STAGES))
	$(BIN)/mmgen eval moving-shapes --model runs/moving_shapes_t2v_$(lastword $(T2V_STAGES))/final \
	  --num-prompts 200 --seed 0 --out-dir runs/eval_moving_shapes_t2v

# one more round of clips on the installed `moving-shapes-t2v` (configs/moving_shapes_t2v_clips_more.yaml:
# init_from the built-in, about 2 h on 2 CPU cores with the encode cache warm; round r trains
# with seed r into runs/moving_shapes_t2v_more_r<r>, resumed after an interruption), then the
# eval. Install the result when it beats the built-in's eval:
#   python tools/install_builtin.py --source runs/moving_shapes_t2v_more_r<r>/final \
#     --name moving-shapes-t2v --weights-dtype float16
# The shipped built-in is train-t2v, installed, then round 0, installed, then train-t2v-alternate
# (T2V_ALT=more), installed, then train-t2v-alternate T2V_ALT=more2, installed, then
# train-t2v-alternate T2V_ALT=more3, installed (its default temperature then set to 0.4).
T2V_ROUND ?= 0
T2V_MORE = runs/moving_shapes_t2v_more_r$(T2V_ROUND)
train-t2v-more: setup
	@$(call train_run,configs/moving_shapes_t2v_clips_more.yaml,$(T2V_MORE),--seed $(T2V_ROUND))
	$(BIN)/mmgen eval moving-shapes --model $(T2V_MORE)/final --num-prompts 200 --seed 0 \
	  --out-dir $(T2V_MORE)/eval

# an alternating round on the installed `moving-shapes-t2v`: first frames only
# (configs/moving_shapes_t2v_<T2V_ALT>_frame0.yaml, init_from the built-in), then clips again
# (configs/moving_shapes_t2v_<T2V_ALT>_clips.yaml, init_from part 1), 1.5-2 h on 2 CPU cores with
# the encoding, into runs/moving_shapes_t2v_<T2V_ALT>_{frame0,clips}, then the eval into
# runs/moving_shapes_t2v_<T2V_ALT>_clips/eval. T2V_ALT=more is the first round, more2 the second
# (fresh data, seed 1), more3 the third (data seed 2, two-object prompts weighed up); a further
# round gets configs of its own (a new prefix, a new data seed).
T2V_ALT ?= more
train-t2v-alternate: setup
	$(call train_recipes,configs/moving_shapes_t2v_$(T2V_ALT)_,runs/moving_shapes_t2v_$(T2V_ALT)_,frame0 clips)
	$(BIN)/mmgen eval moving-shapes --model runs/moving_shapes_t2v_$(T2V_ALT)_clips/final \
	  --num-prompts 200 --seed 0 --out-dir runs/moving_shapes_t2v_$(T2V_ALT)_clips/eval

# on a CUDA machine: correctness, attention targets, decode and training (logs in runs/bench-gpu);
# uses .venv when there is one, else $(PYTHON) with mmgen importable
bench-gpu:
	PYTHON="$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))" tools/bench_gpu.sh runs/bench-gpu

clean:
	rm -rf runs eval_shapes demo_grid.png
