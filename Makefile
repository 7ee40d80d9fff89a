# SPDX-License-Identifier: GPL-2.0
#
# rkvm top-level Makefile.
#
#   make                 build rkvm.ko (against the cached test kernel, built on first use)
#   make KDIR=<dir>      build rkvm.ko against another Rust-enabled arm64 kernel build
#   make rustfmt         format the Rust sources as the kernel does (rustfmtcheck: check;
#                        make check runs it first)
#   make clippy          clippy over the host workspace, the selftests and the module
#                        (the kernel's CLIPPY=1); make check runs it before the tests
#   make check           host unit tests + selftests on every emulated host mode, and on
#                        the debug kernel (lockdep, KASAN, kmemleak) in VHE and nVHE
#   make run             boot the emulated VHE host with rkvm loaded; QEMU 10 inside it
#                        boots a Linux guest on rkvm with its default virt machine (ITS,
#                        virtio-pci disk and NIC with MSI-X)
#   make run-kvm         the same QEMU guest on the in-kernel KVM of the host (baseline)
#   make bench           world-switch costs of rkvm and in-kernel KVM side by side
#   make conformance     the kernel's KVM selftests on rkvm and on the in-kernel KVM
#   make interop         QEMU 7.2, QEMU 10 and kvmtool on rkvm and on the in-kernel KVM,
#                        every host mode: the client table (Documentation/interop.rst)
#   make -s print-kernel-image   path of the test kernel's arm64 Image
#
# Build products outside the repo go to $(RKVM_CACHE) (default ~/.cache/rkvm).

ifneq ($(KERNELRELEASE),)
# Invoked by Kbuild: everything is in ./Kbuild.
include $(src)/Kbuild
else

SHELL := /bin/bash
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
export RKVM_CACHE ?= $(HOME)/.cache/rkvm
SCRIPTS := $(TOP)/scripts

LLVM ?= -19
RUSTC ?= /usr/bin/rustc
RUSTDOC ?= /usr/bin/rustdoc
BINDGEN ?= $(RKVM_CACHE)/tools/bin/bindgen
KMAKE_ARGS = ARCH=arm64 LLVM=$(LLVM) RUSTC=$(RUSTC) RUSTDOC=$(RUSTDOC) BINDGEN=$(BINDGEN)
export LIBCLANG_PATH ?= /usr/lib/llvm$(LLVM)/lib

# Without KDIR, build against the project's test kernel (set up on first use).
ifeq ($(KDIR),)
KDIR_DEP := test-kernel
KDIR = $(shell $(SCRIPTS)/build-kernel.sh --print)
endif

.PHONY: all modules clean toolchain test-kernel print-kernel-image print-kdir \
	unittest selftests qemu-userspace check run run-kvm bench conformance \
	rustfmt rustfmtcheck clippy interop

all: modules

modules: $(KDIR_DEP)
	@$(MAKE) -s -C $(KDIR) M=$(TOP) $(KMAKE_ARGS) modules
	@echo "[rkvm] built $(TOP)/rkvm.ko"

toolchain:
	@$(SCRIPTS)/setup-toolchain.sh

test-kernel: toolchain
	@$(SCRIPTS)/build-kernel.sh

print-kernel-image:
	@echo "$$($(SCRIPTS)/build-kernel.sh --print)/arch/arm64/boot/Image"

print-kdir:
	@echo "$(KDIR)"

# The kernel's formatting (its .rustfmt.toml, copied at the top) over every Rust file but
# the generated bindings, as the kernel's own `make rustfmt` / `rustfmtcheck`.
RUST_SOURCES = $(shell find $(TOP)/rust $(TOP)/host-tests/src $(TOP)/selftests/src -name '*.rs' ! -name '*generated*')
rustfmt:
	@rustfmt --edition 2021 --config-path $(TOP)/.rustfmt.toml $(RUST_SOURCES)

rustfmtcheck:
	@rustfmt --edition 2021 --config-path $(TOP)/.rustfmt.toml --check $(RUST_SOURCES) >/dev/null || \
		{ echo "[rkvm] Rust sources not formatted: run 'make rustfmt'"; exit 1; }

# Lints, with warnings as errors: the host workspace and the selftests through cargo,
# the module through the kernel's CLIPPY=1 (its lint set, the same as for in-tree Rust).
# Debian's rust-web-clippy provides a clippy-driver of the same version as $(RUSTC),
# which the kernel build needs (rustup's clippy, first on PATH, is another version).
# The module is rebuilt under clippy-driver and again by the next `make`, since Kbuild
# sees the compiler change.
CLIPPY_DRIVER ?= /usr/bin/clippy-driver
CARGO_CLIPPY ?= /usr/bin/cargo-clippy
clippy: toolchain $(KDIR_DEP)
	@echo "[rkvm] clippy: host workspace, selftests, module"
	@RUSTC=$(RUSTC) $(CARGO_CLIPPY) clippy --quiet --all-targets \
		--manifest-path $(TOP)/Cargo.toml -- -D warnings
	@cd $(TOP)/selftests && RUSTC=$(RUSTC) $(CARGO_CLIPPY) clippy --quiet --locked \
		--all-targets -- -D warnings
	@$(MAKE) -s -C $(KDIR) M=$(TOP) $(KMAKE_ARGS) CLIPPY=1 CLIPPY_DRIVER=$(CLIPPY_DRIVER) \
		KRUSTFLAGS=-Dwarnings modules

unittest:
	@echo "[rkvm] host unit tests (cargo test)"
	@cargo test --quiet --manifest-path $(TOP)/Cargo.toml

selftests: toolchain
	@$(SCRIPTS)/build-selftests.sh

# Debian's arm64 QEMU 7.2 and its libraries as a cpio for the host's initramfs (cached).
qemu-userspace: toolchain
	@$(SCRIPTS)/build-qemu-userspace.sh >/dev/null

# Every host mode on the test kernel, then VHE and nVHE on the debug kernel; the last
# line judges all of them together. RKVM_CHECK_INTEROP adds the interop clients it names
# to every host mode of the test kernel (Documentation/interop.rst, CI); empty: none.
# QEMU 10's default machine and kvmtool with and without an ITS: what CI must prove.
export RKVM_CHECK_INTEROP ?= qemu-10,kvmtool-its,kvmtool-gicv3
OUT = $(or $(RKVM_OUT),$(TOP)/out)
check: rustfmtcheck clippy modules unittest selftests qemu-userspace
	@$(SCRIPTS)/check-hyp-object.sh --self-test
	@mkdir -p $(OUT) && rm -f $(OUT)/check-summaries
	@$(SCRIPTS)/run-hosts.sh check || true
	@$(SCRIPTS)/check-debug.sh || true
	@echo "[rkvm] all hosts, test and debug kernels:"
	@python3 $(SCRIPTS)/ktap-summary.py $$(cat $(OUT)/check-summaries)

# The VMM of `make run`: 7.2 (Debian bookworm's QEMU, qemu_boot) or 10 (bookworm-backports'
# QEMU with its default virt machine: ITS on, virtio-pci disk and NIC with MSI-X).
export RKVM_RUN_QEMU ?= 10

run: modules selftests qemu-userspace
	@$(SCRIPTS)/run-hosts.sh run vhe

run-kvm: modules selftests qemu-userspace
	@$(SCRIPTS)/run-hosts.sh run vhe-kvm

bench: modules selftests
	@python3 -c 'import matplotlib' 2>/dev/null || pip install --quiet matplotlib || true
	@$(SCRIPTS)/bench.sh

# Not part of check: the kernel's selftests, rkvm vs KVM, into Documentation/conformance.rst.
conformance: modules selftests
	@$(SCRIPTS)/conformance.sh

# Not part of check: the client matrix, rkvm vs KVM, into Documentation/interop.rst.
interop: modules selftests qemu-userspace
	@$(SCRIPTS)/interop.sh

clean:
	@kdir="$(if $(KDIR_DEP),$$($(SCRIPTS)/build-kernel.sh --dir),$(KDIR))"; \
	if [ -d "$$kdir" ]; then $(MAKE) -s -C "$$kdir" M=$(TOP) $(KMAKE_ARGS) clean; fi
	@rm -rf $(TOP)/target $(TOP)/selftests/target $(TOP)/out $(TOP)/rust/sys/bindings_generated.rs \
		$(TOP)/include/generated $(TOP)/rust/hyp/asm_offsets.s

endif
