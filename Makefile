# tscni: build, install and test. On a fresh Debian 12 machine `make demo` and `make test` install what
# they need (scripts/deps.sh). Everything builds offline once npm packages and apt packages are there.

CNI_BIN_DIR  ?= /opt/cni/bin
CNI_CONF_DIR ?= /etc/cni/net.d
DESTDIR      ?=
PLUGINS      := bridge host-local ptp host-gw ipip vxlan
CONFS        := $(wildcard conf/*.conflist)
SOURCES      := $(shell find pkg plugins ipam -name '*.ts' ! -name '*.test.ts' 2>/dev/null) package.json package-lock.json
DEMO_DIR     := build/demo

.PHONY: all deps deps-npm build install install-conf uninstall lint test test-unit test-e2e soak demo bench bench-dataplane typecheck clean

all: build

deps:
	bash scripts/deps.sh

deps-npm:
	bash scripts/deps.sh --npm-only

build: deps-npm build/bin/tscni

build/bin/tscni: $(SOURCES) pkg/netlink/native/netlink.c scripts/build.sh scripts/bundle.sh scripts/bundle.js scripts/native.sh scripts/sea-exe.sh scripts/sea.js
	bash scripts/build.sh

# the netlink module alone, for unit tests that run without a full build
build/native/netlink.node: pkg/netlink/native/netlink.c scripts/native.sh
	bash scripts/native.sh build/native

typecheck: deps-npm
	node_modules/.bin/tsc --noEmit -p .

# No rebuild here: `sudo make install` after `make build` must not build as root.
install:
	@test -x build/bin/tscni || { echo "install: build/bin/tscni missing: run 'make build' first" >&2; exit 1; }
	install -d '$(DESTDIR)$(CNI_BIN_DIR)'
	install -m 0755 build/bin/tscni '$(DESTDIR)$(CNI_BIN_DIR)/tscni'
	for p in $(PLUGINS); do ln -sfn tscni '$(DESTDIR)$(CNI_BIN_DIR)/'$$p; done

install-conf:
	install -d '$(DESTDIR)$(CNI_CONF_DIR)'
	install -m 0644 $(CONFS) '$(DESTDIR)$(CNI_CONF_DIR)/'

uninstall:
	for p in tscni $(PLUGINS); do f='$(DESTDIR)$(CNI_BIN_DIR)/'$$p; \
	  if [ "$$p" = tscni ] || [ "$$(readlink "$$f")" = tscni ]; then rm -f "$$f"; fi; done

# The house's rules (eslint.config.js: layers, the one door, no cycles), types and formatting; part of every test run.
lint: deps-npm
	node_modules/.bin/tsc --noEmit -p .
	node_modules/.bin/eslint --max-warnings 0 .
	node_modules/.bin/prettier --check --log-level warn '**/*.{ts,js}'

test: deps build lint
	bash scripts/test.sh unit e2e

test-unit: deps-npm lint build/native/netlink.node
	bash scripts/test.sh unit

test-e2e: deps build
	bash scripts/test.sh e2e

# Release check, not part of test: kill -9 faults, pod churn and fuzzed calls (about an hour; SOAK_SCALE=0.1 for
# a quick look, SOAK_SEED=<n> to replay). Figures land in build/soak/*.json.
soak: deps build
	bash scripts/test.sh soak

demo: deps build
	rm -rf '$(DEMO_DIR)'
	$(MAKE) --no-print-directory install DESTDIR='$(CURDIR)/$(DEMO_DIR)' CNI_BIN_DIR=/opt/cni/bin
	$(MAKE) --no-print-directory install-conf DESTDIR='$(CURDIR)/$(DEMO_DIR)' CNI_CONF_DIR=/etc/cni/net.d
	bash scripts/demo.sh '$(CURDIR)/$(DEMO_DIR)'

bench: deps build
	@if [ -f bench/run.sh ]; then bash bench/run.sh; else echo "bench: bench/run.sh does not exist yet" >&2; exit 1; fi

# Pod-to-pod throughput, our plugins against the same topology built by hand (also run at the end of bench).
bench-dataplane: deps build
	bash bench/dataplane.sh

clean:
	rm -rf build
