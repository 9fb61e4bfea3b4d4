# The two commands of the README:
#   make demo   install everything, index the built-in sample photos, serve them
#   make test   install everything, lint, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo index serve serve-proxy test lint system clean

demo: index serve

index: $(VENV)/.installed
	$(BIN)/python img2vec.py --sample

serve: $(VENV)/.installed
	@echo "imgsim: open http://127.0.0.1:8000/ once the workers say they booted (Ctrl+C stops it)"
	$(BIN)/gunicorn -c gunicorn.conf.py 'app:create_app()'

# gunicorn behind nginx (deploy/nginx.conf): open http://127.0.0.1:8080/ instead
serve-proxy: $(VENV)/.installed system
	$(BIN)/python proxy.py

test: $(VENV)/.installed system
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

system:
	bash scripts/install-system.sh

lint: $(VENV)/.installed
	$(BIN)/ruff check .

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

clean:
	rm -rf $(VENV) rsc_files .pytest_cache .ruff_cache
