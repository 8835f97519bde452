# Two commands do all set-up on a fresh machine:
#   make demo   the main job: faces from the bundled example masks with the bundled model
#               (onnxruntime on the CPU, or OpenVINO bf16 where the CPU has AMX-BF16/AVX512-BF16;
#               the runtime install has no torch)
#   make test   the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_VENV ?= .venv-run
# The suite on every core (pytest-xdist), one test file per worker at a time: a file's fixtures are made once.
TEST_WORKERS ?= auto
PARALLEL := -n $(TEST_WORKERS) --dist loadfile
# The OpenVINO extra where its bf16 path is native (--backend auto then picks it); elsewhere it is no faster.
# MASKFACE_NATIVE_BF16=1 or 0 overrides the CPU's flags here as it overrides --backend auto's probe.
NATIVE_BF16 := $(or $(strip $(MASKFACE_NATIVE_BF16)),$(if $(shell grep -m1 -wE 'amx_bf16|avx512_bf16' /proc/cpuinfo 2>/dev/null),1,0))
$(if $(filter-out 0 1,$(NATIVE_BF16)),$(error MASKFACE_NATIVE_BF16 must be 1, 0 or unset (ask the CPU), got '$(NATIVE_BF16)'))
RUN_EXTRAS := $(if $(filter 1,$(NATIVE_BF16)),[openvino])

.PHONY: demo test test-fast lint typecheck demo-model
.DELETE_ON_ERROR:

$(VENV)/.installed-test: pyproject.toml requirements-test.txt requirements-triton-server.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-test.txt -e .
	$(PY) -m pip install -q --no-deps -r requirements-triton-server.txt
	touch $@

# The demo installs the package as users get it (a wheel, not editable: an editable install of this layout makes
# setuptools print warnings), again whenever its sources or the bundled model change.
RUN_SOURCES := $(wildcard maskface_rt/*.py maskface_rt/*/*.py maskface_rt/*/*/*.py export/*.py kernels/*.py maskface_rt/data/demo-model/*)
$(RUN_VENV)/.installed: pyproject.toml $(RUN_SOURCES)
	$(PYTHON) -m venv $(RUN_VENV)
	$(RUN_VENV)/bin/python -m pip install -q --upgrade pip
	$(RUN_VENV)/bin/python -m pip install -q '.$(RUN_EXTRAS)'
	touch $@

# The editor's browser test drives Debian's chromium (Playwright's own browser download cannot work here):
# installed when missing and we are root with apt, else that one test skips with the reason.
lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy on the torch-free runtime: what it checks and how strictly is [tool.mypy] in pyproject.toml.
typecheck: $(VENV)/.installed-test
	$(VENV)/bin/mypy

test: lint typecheck mutation-check
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium could not be installed: the editor's browser test will skip"
	$(PY) -m pytest -q $(PARALLEL)

# Deliberate bugs that named tests must catch (tools/mutation_check.py: each file put back afterwards); CI runs it.
.PHONY: mutation-check
mutation-check: $(VENV)/.installed-test
	$(PY) tools/mutation_check.py

# The edit loop: everything but the tests marked slow (exports, training, installs, the browser).
test-fast: $(VENV)/.installed-test
	$(PY) -m pytest -q -m "not slow" $(PARALLEL)

demo: $(RUN_VENV)/.installed
	$(RUN_VENV)/bin/maskface generate examples/masks --out out/ --grid

# Rebuilds the bundled demo model from scratch (about 8 hours on 2 idle CPU cores); see docs/demo-model.md.
# Phase 1: StarGAN v2's recipe; phase 2 resumes it with the diversity weight decaying to 0 by step 6000;
# phase 3 decays the learning rates linearly to 0 (SPADE's end of run).
DEMO_STEPS ?= 2500
DEMO_DECAY_START ?= 10000
DEMO_FINAL_STEPS ?= 11500
DEMO_RUN ?= out/demo-model-run
demo-model: $(VENV)/.installed-test
	$(VENV)/bin/maskface synth out/demo-model-data --count 3000 --size 64 --seed 0
	$(VENV)/bin/maskface train out/demo-model-data --out $(DEMO_RUN) --preset tiny-64 --steps $(DEMO_STEPS) \
		--checkpoint-every 250 --sample-every 250 --seed 0
	$(VENV)/bin/maskface train out/demo-model-data --out $(DEMO_RUN) --resume --steps $(DEMO_DECAY_START) \
		--ds-decay-steps 6000
	$(VENV)/bin/maskface train out/demo-model-data --out $(DEMO_RUN) --resume --steps $(DEMO_FINAL_STEPS) \
		--lr-decay-start $(DEMO_DECAY_START) --lr-decay-steps $$(($(DEMO_FINAL_STEPS) - $(DEMO_DECAY_START)))
	$(VENV)/bin/maskface export $(DEMO_RUN)/model.safetensors --out out/demo-model-export
	@echo "check it (docs/demo-model.md), then: rm -rf maskface_rt/data/demo-model && cp -r out/demo-model-export maskface_rt/data/demo-model"

# The GPU validation run (../shared/GPU.md): every GPU figure into $(GPU_CHECK_OUT) (summary.json, summary.md,
# logs.tar.gz), under 8 minutes on an H100/H200; uses the python on PATH (no venv is made on that machine), with
# the checkout on PYTHONPATH where the package is not installed. GPU_CHECK_DRY=1 rehearses it on the CPU.
GPU_CHECK_OUT ?= $(if $(OUT),$(OUT),out/gpu-check)
.PHONY: gpu-check
gpu-check:
	$(PYTHON) -P -c 'import maskface_rt' 2>/dev/null || export PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}"; \
		$(PYTHON) benchmarks/gpu_check.py --out $(GPU_CHECK_OUT)

# The one call for the GPU machine (../shared/GPU.md): gpu-check's essential steps, then a demo-model training run
# with the time left, under 570 s; into $(GPU_SESSION_OUT) (summary.json/md, logs.tar.gz, demo-candidate/).
# Like gpu-check: the python on PATH, the checkout on PYTHONPATH where not installed. GPU_SESSION_DRY=1 rehearses
# it on the CPU at tiny sizes. Budget split and preset: benchmarks/README.md ("gpu-session").
GPU_SESSION_OUT ?= $(if $(OUT),$(OUT),out/gpu-session)
.PHONY: gpu-session
gpu-session:
	$(PYTHON) -P -c 'import maskface_rt' 2>/dev/null || export PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}"; \
		$(PYTHON) benchmarks/gpu_session.py --out $(GPU_SESSION_OUT)

# Judges a demo-model candidate (CKPT: a model file, e.g. gpu-session's demo-candidate/model.safetensors, or an
# export folder) against the bundled model on the demo-quality benchmark, side by side, and replaces
# maskface_rt/data/demo-model only if the candidate is better (docs/demo-model.md). About 10 minutes on 2 cores.
DEMO_CANDIDATE_REPORT ?= benchmarks/results/demo-candidate.md
.PHONY: demo-candidate
demo-candidate: $(VENV)/.installed-test
	@test -n "$(CKPT)" || { echo "make demo-candidate CKPT=<model.safetensors or export folder>" >&2; exit 2; }
	$(PY) benchmarks/demo_candidate.py $(CKPT) --report $(DEMO_CANDIDATE_REPORT)

# The OpenVINO bf16 figures (issue 18's done-when) on a CPU with AMX-BF16 or AVX512-BF16, into $(BF16_CHECK_OUT)
# (bench results under their benchmarks/results/ names, summary.md/json); refuses elsewhere (exit 4).
# BF16_CHECK_DRY=1 rehearses it on any CPU. Uses the test venv (make test makes it; it has OpenVINO).
BF16_CHECK_OUT ?= out/bf16-check
.PHONY: bf16-check
bf16-check: $(VENV)/.installed-test
	$(PY) benchmarks/bf16_check.py --out $(BF16_CHECK_OUT)
