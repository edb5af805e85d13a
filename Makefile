# The README's two commands. Both install what they need first (scripts/bootstrap.sh: Debian packages
# when missing, the .venv when pyproject.toml changed) and are safe to run again.
VENV := .venv
PY := $(VENV)/bin/python
PACKAGES := jieshui devices collector store simulators verification api programme grafana

.PHONY: demo test bench bootstrap lint typecheck unit

demo: bootstrap
	$(VENV)/bin/jieshui demo

test: bootstrap lint typecheck unit

# Every benchmark, side by side with its baseline, in under ten minutes: bench/results.json and the
# table in docs/benchmarks.md (bench/run_all.py).
bench: bootstrap
	$(PY) -m bench.run_all

bootstrap:
	@bash scripts/bootstrap.sh

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: bootstrap
	$(VENV)/bin/mypy

unit: bootstrap
	$(PY) -m pytest
