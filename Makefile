# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint typecheck docs pytest fuzz bench bench-full system-deps clean

# The package with every extra, plus the development tools of the `dev` dependency
# group (PEP 735; `pip install --group` needs pip 25.1 or later, hence the upgrade).
$(STAMP): pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade 'pip>=25.1'
	$(PY) -m pip install -q -e '.[all,demo]' --group dev
	touch $(STAMP)

# Database servers the rotation tests run against (real ones, on 127.0.0.1).
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  echo "installing PostgreSQL server binaries"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi
	@if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then \
	  echo "installing MariaDB server"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null; fi

demo: $(STAMP)
	$(PY) -m secretcache demo

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy --strict secretcache

docs: $(STAMP)
	@if [ -f mkdocs.yml ]; then NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet --site-dir build/site; fi

# pytest's exit status is kept in .pytest-rc so .ci/run can tell "no tests" (5) apart.
# Property tests run the fixed `ci` hypothesis profile here (tests/hypothesis_profiles.py):
# the same examples on every run, so a red run is a real failure.
pytest: $(STAMP) system-deps
	@rm -f .pytest-rc; HYPOTHESIS_PROFILE=ci $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; echo $$rc > .pytest-rc; exit $$rc

# Longer random exploration of every property test (new seeds each run, 10x the examples;
# failures are kept in .hypothesis/ and replayed first). Not part of `make test`.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=explore $(PY) -m pytest -m hypothesis -p no:cacheprovider $(PYTEST_ARGS)

test: lint typecheck docs pytest

bench: $(STAMP)
	$(PY) -m benchmarks --quick
	$(PY) -m benchmarks.fleet --quick

bench-full: $(STAMP)
	$(PY) -m benchmarks
	$(PY) -m benchmarks.fleet

clean:
	rm -rf $(VENV) build .pytest-rc .mypy_cache .ruff_cache .pytest_cache
