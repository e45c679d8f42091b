# The two commands: `make demo` (set up, build, run the main job) and `make test`.
# Both install what is missing on a fresh Debian machine first.

DEB_PACKAGES := busybox-static dnsmasq-base golang-go libseccomp-dev nftables iptables iproute2 util-linux bsdutils skopeo umoci conntrack procps gzip zstd hyperfine wrk runc binutils containernetworking-plugins podman containerd docker-registry apache2-utils python3-jwt openssl
# Installed without their recommendations (qemu's would bring a GUI): the cgroup v2 test's VM.
DEB_PACKAGES_LEAN := qemu-system-x86
CARGO ?= cargo
MINIBOX := target/release/minibox

.PHONY: demo test deps build lint

demo: deps build
	MINIBOX=$(MINIBOX) examples/demo.sh

test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

build:
	$(CARGO) build --release -p minibox -p minibox-tests

deps:
	@missing() { for p in "$$@"; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done; }; \
	full=$$(missing $(DEB_PACKAGES)); lean=$$(missing $(DEB_PACKAGES_LEAN)); \
	if [ -n "$$full$$lean" ]; then \
		echo "installing: $$full $$lean"; \
		apt-get update -qq || exit 1; \
		if [ -n "$$full" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$full || exit 1; fi; \
		if [ -n "$$lean" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$lean || exit 1; fi; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "minibox needs a Rust toolchain (cargo): see https://rustup.rs"; exit 1; }
