# ulmfit-rs: two commands do everything on a fresh machine.
#   make demo   the main job on a built-in default (IMDb sample → tokens → shards → ...)
#   make test   the whole test suite
# Both install what is missing (libtorch from PyPI torch==2.11.0 into a per-user cache, once).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
# Sets LIBTORCH_USE_PYTORCH, PATH and TORCH_LIB for tch; installs torch once if needed.
TORCH_ENV = eval "$$(scripts/libtorch.sh)"

.PHONY: all build demo test bench lint fmt clean

all: build

build:
	$(TORCH_ENV) && $(CARGO) build --release --workspace

demo:
	$(TORCH_ENV) && $(CARGO) build --release --workspace
	scripts/demo.sh

test:
	$(TORCH_ENV) && $(CARGO) test --release --workspace

bench:
	$(TORCH_ENV) && $(CARGO) build --release --workspace
	benches/run.sh

lint:
	$(CARGO) fmt --all --check
	$(TORCH_ENV) && $(CARGO) clippy --release --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf out
