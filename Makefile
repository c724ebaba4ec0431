# The README's commands. Every target installs what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAMPLE ?= multi-group-cluster
REPORT ?= build/incident-postmortem.html

.PHONY: demo test test-unit lab bench lint system jars samples clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

## demo: render the incident post-mortem on a bundled sample into one offline HTML file
demo: $(STAMP)
	$(VENV)/bin/kbp report $(SAMPLE) --out $(REPORT)

system:
	bash scripts/install-system.sh

jars: $(STAMP)
	$(VENV)/bin/kbp sandbox fetch

## test: unit + integration (real Kafka, Prometheus) + notebooks + browser
test: $(STAMP) system jars
	$(PY) -m pytest tests

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks --ServerApp.ip=127.0.0.1

bench: $(STAMP) system jars
	$(PY) -m benchmarks.run_all

samples: $(STAMP) system jars
	$(PY) -m scenarios.record_all

lint: $(STAMP)
	$(VENV)/bin/ruff check kbp_notebook tests benchmarks scenarios
	$(VENV)/bin/mypy

clean:
	rm -rf build .pytest_cache
