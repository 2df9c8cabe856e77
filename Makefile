# Shortcuts for kiln's developers. The README's commands stay plain `go` commands
# (go run ./cmd/kiln train, go test ./...); these only save typing.
#
# The default build is CPU-only. The cuda build (-tags cuda) needs cuda.h and libcuda.so
# (Debian 12: nvidia-cuda-dev from the non-free component) and cannot start on a machine
# without an NVIDIA driver, because gorgonia.org/cu initialises the driver at program start.

GO       ?= go
BIN      ?= bin
IMAGE    ?= kiln
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
# Arguments for `make bench`, e.g. make bench BENCH_ARGS="--device cuda --batch 1024".
BENCH_ARGS ?=

.PHONY: all build build-cuda test test-cuda generate bench docker docker-cpu lint clean

all: lint test build

## build: the CPU-only kiln binary in $(BIN)/
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/kiln ./cmd/kiln

## build-cuda: kiln with the CUDA backend in $(BIN)/kiln-cuda
build-cuda:
	$(GO) build -tags cuda -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/kiln-cuda ./cmd/kiln

## test: the test suite of the default (CPU) build, and the Dockerfile test (its own module)
test:
	$(GO) test ./...
	cd docker && $(GO) test ./...

## test-cuda: build the CUDA backend's test binary; run it only where a GPU answers
test-cuda:
	$(GO) vet -tags cuda ./...
	$(GO) test -c -tags cuda -o $(BIN)/cuda.test ./device/cuda
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(BIN)/cuda.test -test.v -test.count=1; \
	else \
		echo "test-cuda: no NVIDIA GPU here: built $(BIN)/cuda.test, not running it"; \
	fi

## generate: regenerate the committed PTX from kernels/*.cu (needs nvcc)
generate:
	$(GO) generate ./kernels

## bench: training throughput of the default bench model on the default device
bench:
	$(GO) run ./cmd/kiln bench $(BENCH_ARGS)

## docker: the CUDA image ($(IMAGE):$(VERSION) and $(IMAGE):latest)
docker:
	docker build -f docker/Dockerfile --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		-t $(IMAGE):$(VERSION) -t $(IMAGE):latest .

## docker-cpu: the CPU-only image ($(IMAGE):$(VERSION)-cpu and $(IMAGE):cpu)
docker-cpu:
	docker build -f docker/Dockerfile --target cpu --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		-t $(IMAGE):$(VERSION)-cpu -t $(IMAGE):cpu .

## lint: formatting and vet, for the default and the cuda builds
lint:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags cuda ./...

clean:
	rm -rf $(BIN)
