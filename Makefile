# The two commands: `make run` (everything up locally) and `make test` (the whole suite against real servers).
SHELL := /bin/bash
PY := .venv/bin/python
PORT ?= 8000
SANDBOX_PORT ?= 8090

.PHONY: run test deps servers stop migrate bench clean-var prod-local

deps:
	@bash scripts/bootstrap.sh

servers: deps
	@bash scripts/servers.sh start

migrate: servers
	@set -a; . $${GYM_VAR_DIR:-var}/dev.env; set +a; $(PY) manage.py migrate

run: servers
	@PORT=$(PORT) SANDBOX_PORT=$(SANDBOX_PORT) bash scripts/run.sh

# The suite in TEST_WORKERS processes (pytest-xdist; each has its own database, Redis and sandbox, and a test file
# stays in one process). Most of a test's time is waiting on other processes, so 3 on a 2-core machine took about
# half the time of one; TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 3
test:
	@WITH_NODE=1 WITH_BROWSER=1 WITH_DEPLOY=1 bash scripts/bootstrap.sh
	@bash scripts/servers.sh start
	@$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Stops what `make run` started (by the pid files under var/, never a process that only shares a name), then
# MariaDB and Redis. Harmless when nothing runs.
stop:
	@bash scripts/run.sh stop
	@bash scripts/servers.sh stop

# The benchmark suite (bench/run_all.py, about 8 minutes): BENCH_ARGS for its options, e.g.
#   make bench BENCH_ARGS="--service-root /work/wt/before --workers 2 --repeat 2"
bench: servers
	@WITH_BENCH=1 bash scripts/bootstrap.sh
	@$(PY) bench/run_all.py $(BENCH_ARGS)

prod-local:
	@bash scripts/prod-local.sh up
