# Two commands do all set-up on a fresh machine:
#   make demo   the main job
#   make test   the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test
.DELETE_ON_ERROR:

$(VENV)/.installed-test: pyproject.toml requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-test.txt -e .
	touch $@

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

# Until a trained demo model is bundled, the main job trains a tiny one first (a few minutes on 2 cores).
demo: $(VENV)/.installed-test
	$(VENV)/bin/maskface synth out/demo-data --count 256 --size 64 --seed 0 --overwrite
	rm -rf out/demo-run
	$(VENV)/bin/maskface train out/demo-data --out out/demo-run --preset tiny-64 --steps 200
	$(VENV)/bin/maskface export out/demo-run/model.safetensors --out out/demo-run/onnx
	$(VENV)/bin/maskface generate out/demo-data/masks --model out/demo-run/onnx --out out/demo-faces --styles 4 --grid
