# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo-out
DEMO_DATA := $(DEMO_DIR)/sample
DEMO_CACHE := $(DEMO_DIR)/cache
DEMO_RUN := $(DEMO_DIR)/runs/demo

.PHONY: demo test install clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install -e ".[test]"
	touch $@

install: $(VENV)/.installed

## demo: install, draw the sample data, cache it, train, evaluate every view on the PNGs, predict, report
demo: $(VENV)/.installed
	$(PY) -m geoconvnet data synth $(DEMO_DATA) --classes 8 --per-class 48 --test-per-class 12
	$(PY) -m geoconvnet data prepare $(DEMO_DATA) --out $(DEMO_CACHE)
	rm -rf $(DEMO_RUN)
	$(PY) -m geoconvnet train --data $(DEMO_CACHE) --config configs/demo.yaml \
		--runs-dir $(DEMO_DIR)/runs --name demo
	for view in center grid full random; do \
		$(PY) -m geoconvnet evaluate $(DEMO_RUN) --data $(DEMO_DATA) --eval-view $$view || exit 1; \
	done
	$(PY) -m geoconvnet predict $(DEMO_RUN) $(DEMO_DATA)/test/*/0.png --top-k 3
	$(PY) -m geoconvnet report $(DEMO_RUN) --archive
	@echo
	@echo "Demo finished. Results:"
	@echo "  sample screenshots: $(DEMO_DATA)   training cache: $(DEMO_CACHE)"
	@echo "  run folder (config, metrics.csv, checkpoints): $(DEMO_RUN)"
	@echo "  evaluation per view (per-country report, confusion, predictions): $(DEMO_RUN)/eval/"
	@echo "  report (open in a browser): $(DEMO_RUN)/report/report.html"
	@echo "  TensorBoard: $(VENV)/bin/tensorboard --logdir $(DEMO_DIR)/runs"
	@echo "  the web app (drop a screenshot, see the guesses, heat maps and the pin):"
	@echo "    $(VENV)/bin/geoconvnet serve $(DEMO_RUN)   then open http://127.0.0.1:8000/"

## test: install the test extras and run the whole suite (starts a throwaway PostgreSQL on
## 127.0.0.1 for the shared-study tests when PostgreSQL is installed; skipped otherwise).
## Two pytest processes, a test file each at a time: much of the suite waits for servers,
## browsers and subprocesses to start, and the other process uses that time.
test: $(VENV)/.installed-test
	GEOCONVNET_TEST_POSTGRES=$${GEOCONVNET_TEST_POSTGRES:-$$(scripts/test_postgres.sh || true)} \
		$(PY) -m pytest -n 2 --dist loadfile

clean:
	rm -rf $(DEMO_DIR) runs .pytest_cache
