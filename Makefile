# loadbench — every target creates the virtualenv first when it is missing, so on a fresh
# machine `make bench` and `make test` are the only set-up commands.
#
#   make bench [TARGET=http://127.0.0.1:8000] [SCENARIO=name|file.py] [USERS=10] [DURATION=30s] [ARGS='...']
#   make ui [TARGET=http://127.0.0.1:8000] [SCENARIO=...] [ARGS='...']   Locust's web UI with loadbench
#   make report RUN=reports/<run dir>
#   make bench-variants [USERS=4] [DURATION=10s]   the demo's four model variants side by side (loadbench variants)
#   make test          lint, type-check and the whole test suite (what CI runs)
#   make test-stress   the suite three times beside four CPU burners (must stay green)
#   make test-real     the whole real-server conformance matrix (tests/real/, docs/servers.md)
#   make benchmark     recording, sampler, live-metrics and routing overhead, open-loop fidelity, analyzer
#                      scale, what-if speed and validation (docs/benchmarks.md)
#   make benchmark-setup   install nginx and wrk (Debian packages), which `make benchmark` needs
#   make protos        regenerate the committed gRPC stubs from loadbench/protocols/v2grpc/*.proto

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TARGET ?=
SCENARIO ?=
USERS ?= 10
DURATION ?= 30s
ARGS ?=
RUN ?=
# The real third-party servers `make test` runs (tests/real/): the two quickest to install.
QUICK_REAL := mlserver kserve

.PHONY: install bench bench-variants ui report demo test test-stress test-real real-venvs lint typecheck unit benchmark benchmark-setup protos durations clean

# Reinstalls when pyproject.toml changes; otherwise a no-op.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

bench: install
	$(BIN)/loadbench run $(if $(TARGET),--target '$(TARGET)',--demo) $(if $(SCENARIO),--scenario '$(SCENARIO)') \
		--users $(USERS) --duration $(DURATION) $(ARGS)

# The demo's digits model and its int8, pruned and distilled variants, each run on the same labelled
# rows, then set side by side: accuracy, latency, throughput, memory (reports/variants/variants.html).
VARIANTS := digits digits-int8 digits-pruned digits-distilled
bench-variants: install
	@rm -rf reports/variants
	@for model in $(VARIANTS); do \
		$(BIN)/loadbench run --demo --scenario kserve_v2 --model $$model --data loadbench/data/digits_v2.jsonl \
			--label $$model --users $(USERS) --duration $(DURATION) --quiet --out reports/variants/$$model || exit $$?; \
	done
	$(BIN)/loadbench variants $(foreach m,$(VARIANTS),reports/variants/$(m)) --out reports/variants

# Locust's web UI with loadbench inside; without TARGET, against the embedded demo endpoint.
ui: install
	$(BIN)/loadbench ui $(if $(TARGET),--target '$(TARGET)',--demo) $(if $(SCENARIO),--scenario '$(SCENARIO)') \
		--users $(USERS) $(ARGS)

report: install
	@test -n "$(RUN)" || { echo "usage: make report RUN=reports/<run dir>" >&2; exit 2; }
	$(BIN)/loadbench report '$(RUN)'

demo: install
	$(BIN)/loadbench demo

# The Open Inference Protocol's gRPC messages: protoc (grpcio-tools, the test extra) writes the
# *_pb2.py and *_pb2.pyi beside the .proto files; they are committed, so installing needs no protoc.
# tests/protocols/test_v2grpc_proto.py fails when they drift from the .proto files.
protos: install
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. loadbench/protocols/v2grpc/*.proto

lint: install
	$(BIN)/ruff check loadbench scenarios tests $(wildcard benchmarks)
	$(BIN)/ruff format --check loadbench scenarios tests $(wildcard benchmarks)

typecheck: install
	$(BIN)/mypy loadbench

# Four processes on two cores, a test file each at a time (module fixtures run once): most tests
# wait for servers and subprocesses, so four keep both cores busy where two left them idle a third
# of the time (docs/benchmarks.md). Files go out slowest first (tests/durations.json, ordered by
# tests/conftest.py; `make durations` renews it). JUnit XML, and the 25 slowest tests listed at
# the end, so a slow test is seen when it is added.
TEST_WORKERS ?= 4
unit: install
	@mkdir -p .pytest-results
	@$(BIN)/python tests/real/venvs.py build $(QUICK_REAL) || echo "unit: a real server could not be installed; its tests skip with the reason"
	@status=0; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m 'not real_heavy' --junitxml=.pytest-results/unit.xml || status=$$?; \
	$(BIN)/python tests/slowest.py -n 25 .pytest-results/unit.xml; \
	exit $$status

# Each test file's seconds from the last `make unit`, for the order files go out in.
durations: install
	$(BIN)/python tests/slowest.py --write-durations tests/durations.json .pytest-results/unit.xml

# Lint and type check beside the tests (a core for under a minute, while the tests mostly wait).
test: install
	@$(MAKE) --no-print-directory -j3 --output-sync=line lint typecheck unit

# The whole suite three times while four CPU burners oversubscribe the two cores (tests/stress_ci.sh):
# a test that passes only on an idle machine fails here.
test-stress: install
	bash tests/stress_ci.sh 3

# Every real third-party server of tests/real/, each from its own venv, cached outside the clone
# ($$LOADBENCH_REAL_CACHE, default ~/.cache/loadbench/real) and built on first use; `make test`
# runs only the quick ones. A server that cannot be installed here is skipped with its reason.
test-real: install real-venvs
	$(BIN)/python -m pytest tests/real -m real --junitxml=.pytest-results/real.xml
	$(BIN)/python tests/slowest.py -n 25 .pytest-results/real.xml

real-venvs: install
	-$(BIN)/python tests/real/venvs.py build

# Needs nginx and wrk for the recording, capacity, open-loop and HTTP/2 benchmarks, nginx for the routing
# one: `make benchmark-setup`.
benchmark: install
	$(BIN)/python benchmarks/recording_overhead.py
	$(BIN)/python benchmarks/generator_capacity.py
	$(BIN)/python benchmarks/sampler_overhead.py
	$(BIN)/python benchmarks/analyzer_scale.py
	$(BIN)/python benchmarks/analyzer_sections.py
	$(BIN)/python benchmarks/openloop_fidelity.py
	$(BIN)/python benchmarks/http2_ceiling.py
	$(BIN)/python benchmarks/metrics_overhead.py
	$(BIN)/python benchmarks/routing_overhead.py
	$(BIN)/python benchmarks/whatif_speed.py
	$(BIN)/python benchmarks/whatif_validation.py

# nginx-light and wrk from Debian's packages, as root or through sudo (like .ci/run); a no-op
# when both are installed.
benchmark-setup:
	@if command -v wrk >/dev/null 2>&1 && { command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx; }; then \
		echo "benchmark-setup: nginx and wrk are installed"; \
	else \
		if [ "$$(id -u)" -eq 0 ]; then as_root=; \
		elif command -v sudo >/dev/null 2>&1; then as_root="sudo -n"; \
		else echo "benchmark-setup: need root or sudo to apt-get install nginx-light wrk" >&2; exit 1; fi; \
		$$as_root apt-get update -qq && \
		$$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light wrk; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .pytest-results .mypy_cache .ruff_cache *.egg-info
