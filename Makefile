# ulmfit-rs: two commands do everything on a fresh machine.
#   make demo   the main job on a built-in default (IMDb sample → tokens → shards → ...)
#   make test   the whole test suite
# Both install what is missing (libtorch from PyPI torch==2.11.0 into a per-user cache, once).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
# Sets LIBTORCH_USE_PYTORCH, PATH and TORCH_LIB for tch; installs torch once if needed.
TORCH_ENV = eval "$$(scripts/libtorch.sh)"

.PHONY: all build demo test bench lint fmt clean completions

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

# Shell completions and man pages for every tool, from their clap definitions:
# target/share/man/man1/*.1 and target/share/completions/{bash,zsh,fish}/
TOOLS = tokenize numericalize lm-train clf-train lr-find bias-audit plot
completions: build
	mkdir -p target/share/man/man1 target/share/completions/bash target/share/completions/zsh target/share/completions/fish
	for t in $(TOOLS); do \
	  target/release/$$t --generate man > target/share/man/man1/$$t.1; \
	  target/release/$$t --generate bash > target/share/completions/bash/$$t; \
	  target/release/$$t --generate zsh > target/share/completions/zsh/_$$t; \
	  target/release/$$t --generate fish > target/share/completions/fish/$$t.fish; \
	done
	@echo "man pages: target/share/man/man1 (man -l target/share/man/man1/lm-train.1); completions: target/share/completions"

lint:
	$(CARGO) fmt --all --check
	$(TORCH_ENV) && $(CARGO) clippy --release --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf out
