# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up first.
PYTHON_VENV := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test lint bench

setup:
	bash scripts/setup.sh

demo: setup
	$(PYTHON_VENV) scripts/demo.py

test: setup
	$(PYTHON_VENV) -m ruff check .
	$(PYTHON_VENV) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PYTHON_VENV) benchmarks/morph_cost.py
