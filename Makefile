# Every target sets up .venv by itself on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run simulate test bench bench-vrp bench-mdrp load lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  # the service on 127.0.0.1:8000 with a demo shop and a demo feed; Ctrl-C stops it
	$(BIN)/quarterhour serve --demo

simulate: $(STAMP)  # a corner-store day on the virtual clock, outputs in var/run-corner-store-seed1
	$(BIN)/quarterhour gen --preset corner-store --seed 1 --out var/corner-store-seed1.json
	$(BIN)/quarterhour simulate var/corner-store-seed1.json --policy quarterhour --out var/run-corner-store-seed1

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)  # about 4 minutes on 2 cores
	$(BIN)/python -m bench.simulation

bench-vrp: $(STAMP)  # the ortools-vrp baseline on a dark-store and a circle day: about 37 minutes
	$(BIN)/python -m bench.simulation --presets dark-store circle --seeds 1 \
		--vrp-seeds 'dark-store:1;circle:1' --name simulation-vrp

bench-mdrp: $(STAMP)  # every Grubhub MDRP instance present, ready known and revealed, 2 cores
	$(BIN)/python -m bench.mdrp

load: $(STAMP)  # the service under locust for 60 s, then its intake against bare FastAPI: ~5 min
	$(BIN)/python -m bench.load

lint: $(STAMP)
	$(BIN)/ruff check router api bench tests
	$(BIN)/ruff format --check router api bench tests
	$(BIN)/mypy

clean:
	find . -path ./$(VENV) -prune -o \( -name '*.nbi' -o -name '*.nbc' \) -print -exec rm -f {} +
	rm -rf .pytest_cache .mypy_cache .ruff_cache
