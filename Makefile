# sfmesh: `make run` brings the mesh up on this machine; `make test` tests it.
# Both do their own set-up (host packages and daemons, the venv, codegen check).

PYTHON3 ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
RUN_ARGS ?=

.PHONY: run test unit gen check-gen lint bench host host-test venv clean

## run: start etcd and every service in the foreground (Ctrl-C stops all); RUN_ARGS=--tls for TLS
run: host venv
	$(PY) -m devmesh $(RUN_ARGS)

## test: lint, the stale-gen/ check, then every test
test: host-test venv check-gen lint
	$(PY) -m pytest $(PYTEST_ARGS)

## unit: only the fast tests
unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

## gen: regenerate gen/ from protos/
gen: venv
	PYTHON=$(PY) scripts/gen.sh gen

## check-gen: fail when gen/ differs from what protos/ generate
check-gen: venv
	@rm -rf build/gen-check
	@PYTHON=$(PY) scripts/gen.sh build/gen-check
	@diff -r --exclude=__pycache__ gen/sfmesh build/gen-check/sfmesh \
	  || { echo "gen/ is stale: run 'make gen' and commit it"; exit 1; }

## lint: buf lint, ruff, mypy, import contracts
lint: venv
	PYTHON=$(PY) scripts/proto-deps.sh $(PY) build/proto-deps
	$(VENV)/bin/buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services launcher devmesh guests tests bench
	$(VENV)/bin/lint-imports

## bench: the benchmarks under bench/
bench: host venv
	$(PY) -m bench

## host: Debian packages, and virtlogd/libvirtd running
host:
	scripts/setup-host.sh

host-test:
	scripts/setup-host.sh --with-browser

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf build $(VENV)
