# Two commands do everything on a fresh machine:
#   make demo   install, then run the main job on the bundled demo
#   make test   install, then run the test suite
VENV ?= .venv
PYTHON ?= python3
# torch 2.13.0 is pinned so pip takes the CPU build on this project's machines; override on yours,
# e.g. make demo TORCH=torch (a CUDA build) .
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_DIR ?= demo-output

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# rxnfp ships real SMILES-BERT weights used by tests; its declared pins are obsolete, so no deps.
	$(BIN)/python -m pip install --quiet --no-deps rxnfp==0.1.0
	# modelgenerator ships AIDO.Cell's gene index (GenBio AI Community License, non-commercial), read by tests.
	$(BIN)/python -m pip install --quiet --no-deps modelgenerator==0.1.3.post0
	rm -rf embhub.egg-info
	touch $@

demo: install
	EMBHUB_HOME=$(abspath $(DEMO_DIR)) $(BIN)/python scripts/demo.py --out $(abspath $(DEMO_DIR))

test: install
	$(BIN)/python -m pytest

bench: install
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_DIR)
