# tally: run `make help` for the targets.
GO ?= go
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME ?= 10s

.DEFAULT_GOAL := help

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: ## run tally on 127.0.0.1:8080 with a demo tenant (embedded SQLite in ./data)
	$(GO) run ./cmd/tally serve -demo

build: ## build ./bin/tally (its version from git describe)
	$(GO) build -ldflags "-X main.version=$$(git describe --tags --always --dirty 2>/dev/null)" -o bin/tally ./cmd/tally

test: ## run every test with the race detector, then the fuzz targets briefly
	@rm -f .test-skips
	@TALLY_TEST_SKIPLOG=$(CURDIR)/.test-skips $(GO) test -race -count=1 -timeout 30m ./...; status=$$?; \
	if [ -s .test-skips ]; then \
		echo; echo "!!! SKIPPED: these tests did not run on this machine (under CI=true they fail):"; \
		sort .test-skips | uniq -c | sed 's/^ */!!!   /'; echo; \
	fi; rm -f .test-skips; exit $$status
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./ingest/
	$(GO) test -run '^$$' -fuzz '^FuzzCSVCell$$' -fuzztime $(FUZZTIME) ./server/

lint: ## gofmt, go vet, staticcheck and govulncheck
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1)
	$(GO) vet ./...
	$(STATICCHECK) ./...
	GO=$(GO) scripts/govulncheck.sh

bench: ## run the Go benchmarks (figures in docs/PERFORMANCE.md)
	$(GO) test -run '^$$' -bench . -benchtime 10x ./...

screenshots: ## refresh the user guide's screenshots (docs/images) from the browser test (needs Chromium)
	TALLY_SCREENSHOTS=$(CURDIR)/docs/images $(GO) test -count=1 -run '^TestBrowserDashboard$$' ./server/

vendor: ## refresh vendored front-end libraries (uPlot) from npm
	scripts/vendor-uplot.sh

.PHONY: help run build test lint bench screenshots vendor
