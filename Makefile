# The two set-up commands of the README: `make demo` and `make test`.
# Each bootstraps .venv on first use (and again when pyproject.toml changes); both are idempotent.
PYTHON ?= python3
# The CPU build of torch; on a CUDA machine set TORCH_SPEC="torch" (or a CUDA wheel) instead.
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint venv browser clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first: installed later as a dependency, it would pull the multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[llm,sb3,trl,ct2,openai,dev,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m benchmarks demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy recgym benchmarks agents

# The full suite: lint, then every test but the GPU ones (slow tests fetch the embedded
# artifacts and run the real SmolLM2 on CPU).
test: $(STAMP) lint
	$(BIN)/python -m pytest -m "not gpu" $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not gpu and not slow" $(PYTEST_ARGS)

# Debian's Chromium for the leaderboard page's browser test (Playwright's own browser download
# cannot run here); needs root or sudo. Without it that test is skipped, unless
# RECGYM_REQUIRE_BROWSER=1 (CI) makes it fail.
browser:
	command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }; }

clean-venv:
	rm -rf $(VENV)
