# berth's developer commands. `make test` is what CI runs (through .ci/run).
GO ?= go
# Extra flags for `make run`, e.g. RUN_ARGS='--addr 127.0.0.1:5000 --data ./berth-data'.
RUN_ARGS ?=

.PHONY: test lint run build bench

test:
	bash scripts/test.sh

lint:
	bash scripts/test.sh lint

run:
	$(GO) run ./cmd/berth serve $(RUN_ARGS)

build:
	$(GO) build -o bin/berth ./cmd/berth

bench:
	$(GO) run ./cmd/berth-bench $(BENCH_ARGS)
