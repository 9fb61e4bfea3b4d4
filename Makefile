# The two commands of the README:
#   make demo   install everything, index the built-in sample photos, serve them
#   make test   install everything, lint, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo index test lint clean

demo: $(VENV)/.installed
	$(BIN)/python img2vec.py --sample

index: $(VENV)/.installed
	$(BIN)/python img2vec.py --sample

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

clean:
	rm -rf $(VENV) rsc_files .pytest_cache .ruff_cache
