# The README's two commands. Both install what they need first (scripts/bootstrap.sh: Debian packages
# when missing, the .venv when pyproject.toml changed) and are safe to run again.
VENV := .venv
PY := $(VENV)/bin/python
PACKAGES := jieshui devices collector store simulators verification api programme grafana evidence

.PHONY: demo test bench faults bootstrap lint typecheck unit

demo: bootstrap
	$(VENV)/bin/jieshui demo

test: bootstrap lint typecheck unit

# Every benchmark, side by side with its baseline, in under ten minutes: bench/results.json and the
# table in docs/benchmarks.md (bench/run_all.py).
bench: bootstrap
	$(PY) -m bench.run_all

# The fault suite's long profile: every fault of docs/reliability.md ten times over, each test ending
# with InfluxDB counted against the simulators' ground truth (`make test` runs each fault once).
faults: bootstrap
	JIESHUI_FAULT_CYCLES=10 $(PY) -m pytest tests/faults --timeout 1800 -p no:cacheprovider

bootstrap:
	@bash scripts/bootstrap.sh

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: bootstrap
	$(VENV)/bin/mypy

unit: bootstrap
	$(PY) -m pytest
