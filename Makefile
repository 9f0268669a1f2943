# gpufleet.inference: development entry points.
#
#   make demo       this machine as a verified OpenAI-compatible endpoint (llama.cpp, Gemma 3 270M)
#   make bench      benchmarks, side by side with doing the same by hand (docs/benchmarks.md)
#   make test       everything CI runs: set-up, lint, sanity, unit, molecule, summary
#   make lint       yamllint, ansible-lint (production profile), changelog fragments, generated docs
#   make docs       write the roles' README variables tables and CHANGELOG.rst (make docs-lint checks them)
#   make sanity     ansible-test sanity on a copy under ansible_collections/gpufleet/inference
#   make unit       pytest: unit tests and the collection build/install test
#   make molecule   every molecule scenario (SCENARIO=name for one)
#   make check-cuda compile llama.cpp's CUDA backend with the cuda flags for sm_121 and sm_90 (CUDA 13 from PyPI)
#
# Set-up is part of each target that needs it and is skipped when already done:
# a virtualenv with the pinned requirements, a Docker engine, the Compose v2
# plugin and the locally built test host images.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
CACHE := $(CURDIR)/.cache
RESULTS := $(CACHE)/results
export PATH := $(BIN):$(PATH)
export VENV
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/collections
export ANSIBLE_FORCE_COLOR := false
export PY_COLORS := 0

SCENARIOS := $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))
# Empty: every scenario under molecule/.
SCENARIO ?=

.PHONY: help demo bench venv docker images engine-images inputs lint yamllint ansible-lint changelog-lint docs docs-lint changelog sanity unit molecule check-cuda test clean

help:
	@sed -n '3,13p' Makefile | sed 's/^# \{0,1\}//'

$(VENV)/.installed: requirements/controller.txt requirements/dev.txt requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/dev.txt -c requirements/constraints.txt
	touch $@

venv: $(VENV)/.installed

docker: venv
	scripts/ensure-docker.sh

images: docker
	scripts/build-test-images.sh

yamllint: venv
	@mkdir -p $(RESULTS)
	yamllint --strict -f parsable . | tee $(RESULTS)/yamllint.txt

ansible-lint: venv
	@mkdir -p $(RESULTS)
	ansible-lint --format pep8 --nocolor 2>&1 | tee $(RESULTS)/ansible-lint.txt

changelog-lint: venv
	antsibull-changelog lint

# The roles' README tables (scripts/role-docs.py) and CHANGELOG.rst (scripts/changelog.sh) are generated:
# docs-lint fails, naming the file, when a spec or a fragment changed and they were not written again.
docs-lint: venv
	$(BIN)/python scripts/role-docs.py --check
	scripts/changelog.sh --check

changelog: venv
	scripts/changelog.sh

docs: venv changelog
	$(BIN)/python scripts/role-docs.py

lint: yamllint ansible-lint changelog-lint docs-lint

sanity: venv
	@command -v shellcheck >/dev/null || { . scripts/lib.sh && apt_get update -qq && apt_get install -y -qq shellcheck >/dev/null; }
	scripts/sanity.sh

unit: venv
	@mkdir -p $(RESULTS)
	pytest -p no:cacheprovider tests/unit tests/collection --junitxml=$(RESULTS)/unit.xml

inputs: venv
	scripts/fetch-demo-inputs.sh

# The llama.cpp images the scenarios serve (cpu, vulkan), built once through the llamacpp_image role.
engine-images: images inputs
	scripts/build-engine-images.sh

molecule: engine-images
	scripts/molecule-scenarios.sh $(SCENARIO)

demo: docker
	scripts/demo.sh

bench: demo engine-images
	$(BIN)/python scripts/bench.py

# CHECK_CUDA_FULL=1: the whole ggml-cuda library instead of a subset of its objects.
check-cuda: venv
	scripts/check-cuda.sh

test:
	scripts/run-all-checks.sh

clean:
	-for s in $(SCENARIOS); do $(BIN)/molecule destroy -s $$s; done
	rm -rf $(CACHE) $(VENV) .ansible tests/output
