# The two commands: `make demo` (set up, build, run the main job) and `make test`.
# Both install what is missing on a fresh Debian machine first.

DEB_PACKAGES := busybox-static dnsmasq-base e2fsprogs golang-go libseccomp-dev nftables iptables iproute2 util-linux bsdutils strace skopeo umoci conntrack procps gzip zstd hyperfine wrk runc binutils containernetworking-plugins podman containerd docker-registry apache2-utils python3-jwt openssl
# Installed without their recommendations (qemu's would bring a GUI): the cgroup v2 test's VM.
DEB_PACKAGES_LEAN := qemu-system-x86
# What `make demo` alone needs: the build (libseccomp), the web demo's image (busybox, Go) and
# the plumbing minibox drives (iptables, iproute2).
DEMO_PACKAGES := busybox-static golang-go libseccomp-dev iptables iproute2
# apt waits this long for a lock another apt or dpkg holds, instead of failing at once.
APT := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120
CARGO ?= cargo
MINIBOX := target/release/minibox

.PHONY: demo test deps demo-deps build lint

demo: demo-deps build
	MINIBOX=$(MINIBOX) examples/demo.sh

test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

build:
	$(CARGO) build --release -p minibox -p minibox-tests

deps:
	@$(call install,$(DEB_PACKAGES),$(DEB_PACKAGES_LEAN))
	@command -v $(CARGO) >/dev/null || { echo "minibox needs a Rust toolchain (cargo): see https://rustup.rs"; exit 1; }

demo-deps:
	@$(call install,$(DEMO_PACKAGES),)
	@command -v $(CARGO) >/dev/null || { echo "minibox needs a Rust toolchain (cargo): see https://rustup.rs"; exit 1; }

# Installs what of $(1) (with recommendations) and $(2) (without) is missing. `apt-get update`
# is retried for a minute while another apt holds the lists' lock.
define install
missing() { for p in "$$@"; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done; }; \
full=$$(missing $(1)); lean=$$(missing $(2)); \
if [ -n "$$full$$lean" ]; then \
	echo "installing: $$full $$lean"; \
	for i in 1 2 3 4 5 6; do $(APT) update -qq && break; [ $$i = 6 ] && exit 1; echo "apt is busy: retrying in 10 s"; sleep 10; done; \
	if [ -n "$$full" ]; then $(APT) install -y -qq $$full || exit 1; fi; \
	if [ -n "$$lean" ]; then $(APT) install -y -qq --no-install-recommends $$lean || exit 1; fi; \
fi
endef
