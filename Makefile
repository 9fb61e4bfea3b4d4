# The two commands of the README:
#   make demo   install everything, index the built-in sample photos, serve them
#   make test   install everything, lint, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo index serve serve-proxy test test-fast lint system clean image

demo: index serve

index: $(VENV)/.package
	$(BIN)/python img2vec.py --sample

serve: $(VENV)/.package
	@echo "imgsim: open http://127.0.0.1:8000/ once the workers say they booted (Ctrl+C stops it)"
	$(BIN)/gunicorn -c gunicorn.conf.py 'app:create_app()'

# gunicorn behind nginx (deploy/nginx.conf): open http://127.0.0.1:8080/ instead
serve-proxy: $(VENV)/.package system
	$(BIN)/imgsim proxy

test: $(VENV)/.package system
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# A contributor's quick loop: lint, types and the tests not marked slow, one process per core
# (about a minute on two cores)
test-fast: $(VENV)/.package
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -m 'not slow' -q -n auto

system:
	bash scripts/install-system.sh

# The container (Dockerfile) with podman where it is installed, else docker. BASE=IMAGE builds on
# another base; IMAGE_FLAGS adds engine flags (e.g. --isolation=chroot, a CA bundle for pip).
ENGINE ?= $(if $(shell command -v podman),podman,docker)
image:
	$(ENGINE) build $(IMAGE_FLAGS) $(if $(BASE),--build-arg BASE=$(BASE)) -t imgsim .

lint: $(VENV)/.package
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

# The `imgsim` command in the venv: the package installed from this checkout, again whenever it changes
# (a plain install, not an editable one, which would map the checkout's root scripts in as modules).
$(VENV)/.package: $(VENV)/.installed pyproject.toml $(shell find imgsim templates static deploy -type f -not -name '*.pyc')
	$(BIN)/pip install --quiet --no-deps --no-build-isolation .
	touch $@

clean:
	rm -rf $(VENV) rsc_files .pytest_cache .ruff_cache build
