# p2pshare: the two commands a new user needs are `make demo` and `make test`.
GO      ?= go
BIN     := bin/p2pshare
# -race where time allows: the whole suite under the race detector.
TESTFLAGS ?= -race -timeout 20m

.PHONY: build test vet demo testnet bench fuzz interop clean

build:
	$(GO) build -o $(BIN) ./cmd/p2pshare

vet:
	$(GO) vet ./...

# The flood test measures the seed's memory, which the race detector's
# shadow memory would swamp: it runs once more without -race (it skips
# itself under -race).
test: vet
	$(GO) test $(TESTFLAGS) ./...
	$(GO) test -count=1 -timeout 5m -run '^TestFloodedSeed$$' -v ./cmd/p2pshare/

demo:
	./testnet/run.sh demo

testnet:
	./testnet/run.sh $(ARGS)

# The Go benchmarks (each beside its reference), then the testnet's whole, scale,
# flashcrowd and memory scenarios, summed up in one table of issue 11's ratios.
bench:
	./testnet/run.sh bench

# A real Kubo daemon against a p2pshare seed (IPFS_BIN=path/to/ipfs; see
# testnet/interop.sh for how to build one). Not part of test.
interop:
	./testnet/interop.sh

# Run each fuzz target for FUZZTIME (the seed corpora run in `make test`).
FUZZTIME ?= 30s
fuzz:
	@for pkg in ./chunker ./transfer ./peer; do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep ^Fuzz); do \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin testnet/out
