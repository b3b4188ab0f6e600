# minik: two commands set everything up on a fresh Debian machine (as root):
#   make run    installs the OS packages, builds, and brings up examples/cluster.yaml
#   make test   installs the OS packages, builds, and runs every test (root tests too)

SWIFT   ?= swift
PREFIX  ?= /usr/local
RELEASE := .build/release
DEBUG   := .build/debug
EXAMPLE ?= examples/cluster.yaml

# Debian packages: the C libraries minik links, a static C toolchain for the pause
# binary and the images, and the tools the tests, the README and workshops run inside
# nodes (`minik node exec NODE -- dig|brctl|conntrack|tcpdump ...`) and on the host (curl);
# libpcap for capture filters, tshark and Graphviz for the lab bench (capture, graph),
# chromium (headless) for the dashboard's test.
DEB_PACKAGES := gcc libc6-dev libmnl-dev libnl-route-3-dev libseccomp-dev zlib1g-dev pkg-config \
                iproute2 iptables iputils-ping busybox-static tcpdump util-linux procps binutils \
                dnsutils bridge-utils conntrack curl libpcap-dev tshark graphviz chromium

.PHONY: all deps images build build-debug run install test unit-test bench down clean

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# The clients the API is tested with: kubectl 1.31+ (Debian's kubernetes-client is
	@# 1.20, too old) from the Kubernetes or Google Cloud apt repository where one is
	@# configured, and the official Python client from PyPI.
	@if ! kubectl version --client -o json 2>/dev/null | grep -q '"minor": "3[1-9]'; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl >/dev/null 2>&1 || \
	  echo "note: kubectl 1.31+ is not installed and no apt repository has it; the kubectl tests are skipped (see README)"; \
	fi
	@python3 -c 'import kubernetes' 2>/dev/null || pip install -q 'kubernetes>=31' 2>&1 | grep -v -i "warning\|dependency resolver\|requires" || true

# Images (busybox, pause, netexec, minik-dns) are root filesystems built from images/*/recipe; the
# pause image's static binary is also what every pod's sandbox runs.
IMAGE_SOURCES := $(wildcard images/*/recipe images/*/image.json images/*/*.c images/build.sh)
# The minik-dns image carries the DNS server, a release build of its own product.
DNS_SERVER := $(RELEASE)/minik-dns
DNS_SOURCES := Package.swift $(wildcard Sources/MinikAddressing/*.swift Sources/MinikDNS/*.swift Sources/minik-dns/*.swift Sources/CDNSIO/*.c Sources/CDNSIO/include/*.h)
$(DNS_SERVER): $(DNS_SOURCES)
	$(SWIFT) build -c release --product minik-dns
	@touch $@

.build/images/.stamp: $(IMAGE_SOURCES) $(DNS_SERVER)
	images/build.sh .build/images
	@touch $@

images: deps .build/images/.stamp

build: deps images
	$(SWIFT) build -c release

build-debug: deps images
	$(SWIFT) build --build-tests

install: build
	ln -sf $(CURDIR)/$(RELEASE)/minik $(PREFIX)/bin/minik

run: install
	@$(RELEASE)/minik down --name lab >/dev/null 2>&1 || true
	$(RELEASE)/minik up $(EXAMPLE)
	$(RELEASE)/minik get nodes -o wide
	$(RELEASE)/minik get pods -A -o wide

down:
	$(RELEASE)/minik down --all

# Attachments (the dashboard test's screenshot) are written under .build/test-attachments.
test: build-debug
	@mkdir -p .build/test-attachments
	$(SWIFT) test --attachments-path .build/test-attachments

unit-test: build-debug
	$(SWIFT) test --skip MinikIntegrationTests

bench: build
	bench/up-down.sh

clean:
	rm -rf .build
