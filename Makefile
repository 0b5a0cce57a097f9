# blut: `make demo` runs the quant-train recipe and opens the cockpit on it; `make test` runs the tests.
# Both install what they need first (apt packages, .venv, torch CPU, blut[dev,train,llm,tensorboard,mlflow,wandb,ray]).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BLUT := $(VENV)/bin/blut
STAMP := $(VENV)/.installed
APT_PACKAGES := libsystemd-dev pkg-config systemd dbus-user-session
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Start (or find) a systemd user manager and export its address for the recipe line.
WITH_MANAGER = eval "$$($(BLUT) doctor --start-user-manager)" &&

.PHONY: setup demo test check lint typecheck imports bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing apt packages:" $$missing; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	# compat: a path entry instead of setuptools' import hook, which costs ~20 ms at every
	# Python start (blut run starts two); plain -e if a setuptools no longer offers it.
	$(PY) -m pip install -q -e '.[dev,train,llm,tensorboard,mlflow,wandb,ray]' --config-settings editable_mode=compat \
		|| $(PY) -m pip install -q -e '.[dev,train,llm,tensorboard,mlflow,wandb,ray]'
	touch $(STAMP)

# The quant-train recipe on the packaged market data, opened in the cockpit
# (or followed in the log when there is no terminal).
demo: setup
	$(WITH_MANAGER) job=$$($(BLUT) recipe run quant-train --detach) && \
	if [ -t 0 ] && [ -t 1 ]; then $(BLUT) --open $$job; else $(BLUT) log -f $$job; fi

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy -p blut

imports: setup
	$(VENV)/bin/lint-imports

check: lint typecheck imports test

# Every tests/bench/bench_*.py, each printing its ratios against a baseline of the same run.
BENCHES := $(sort $(wildcard tests/bench/bench_*.py))

bench: setup
	$(WITH_MANAGER) for b in $(BENCHES); do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
