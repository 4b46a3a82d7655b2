# Backstop. `make demo` starts the dashboard on a sandbox cluster; `make test` runs what CI runs.
GO      ?= go
BIN     := bin/backstop
PKGS    := ./...

.PHONY: all build demo test generate check-generated lint bench deps-demo deps-test clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/backstop

## demo: install what is missing (PostgreSQL server), build, and run the demo on 127.0.0.1:8080
demo: deps-demo build
	./$(BIN) demo

## test: everything CI runs: generated code current, go.mod tidy, vet, gofmt, the whole test
## suite, then the jobs and the CLI again with every repository in S3 (versitygw on 127.0.0.1)
test: deps-test check-generated lint
	$(GO) test -count=1 -timeout 14m $(PKGS)
	BACKSTOP_TEST_STORAGE=s3 $(GO) test -count=1 -timeout 14m ./jobs/ ./cmd/backstop/

## generate: regenerate templ components
generate:
	$(GO) tool templ generate -path web

check-generated:
	./.ci/check-generated

lint:
	$(GO) mod tidy -diff || { echo "go mod tidy would change go.mod/go.sum (run go mod tidy)"; exit 1; }
	$(GO) vet $(PKGS)
	@out="$$(gofmt -l cmd web handlers store jobs migrations static)"; \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## bench: micro-benchmarks, Backstop vs pg_basebackup (scale 50), RPO and RTO vs pgBackRest, the repository format
bench: deps-test
	$(GO) test -run '^$$' -bench . -benchmem ./store/repository/
	# /var/tmp: both tools write their output on the same disk-backed file system.
	TMPDIR=/var/tmp $(GO) test -run '^$$' -bench BenchmarkFullBackup -benchtime 3x -timeout 30m ./cmd/backstop/
	# RPO (commit → durable outside the source → in the repository) and RTO, vs pgBackRest.
	command -v pgbackrest >/dev/null || sudo apt-get install -y pgbackrest || apt-get install -y pgbackrest
	TMPDIR=/var/tmp $(GO) test -v -run '^$$' -bench 'BenchmarkRPO|BenchmarkRTO' -benchtime 1x -timeout 30m ./cmd/backstop/
	# The repository format (scale 100): full backup, restore, a backup after a scattered change, and a full into S3, vs pg_basebackup and pgBackRest.
	TMPDIR=/var/tmp $(GO) test -v -run '^$$' -bench BenchmarkRepositoryFormat -benchtime 1x -timeout 60m ./cmd/backstop/
	# Retention (scale 50): 14 daily backups and their WAL vs pgBackRest, then expiring half, on local disk and in S3.
	TMPDIR=/var/tmp $(GO) test -v -run '^$$' -bench BenchmarkRetention -benchtime 1x -timeout 90m ./cmd/backstop/
	# A 90-day report of 10 sources with hourly backups and daily verification and drills, filled into the catalog.
	$(GO) test -run '^$$' -bench BenchmarkReport90Days -benchtime 3x -timeout 30m ./jobs/report/
	# Deep verification (scale 50) vs pgbackrest verify on the same data, cold and warm page cache.
	TMPDIR=/var/tmp $(GO) test -v -run '^$$' -bench BenchmarkVerify -benchtime 1x -timeout 60m ./cmd/backstop/

deps-demo:
	./.ci/deps postgresql

deps-test:
	./.ci/deps postgresql chromium poppler versitygw

clean:
	rm -rf bin
