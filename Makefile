# rootless-box developer entry points: demo, test, bench, binary.
#
# Everything runs from a venv at .venv made from Debian's /usr/bin/python3. The venv sees the
# system's site-packages, so that a machine with the dependencies installed by apt (python3-rich,
# python3-zstandard, python3-pyelftools, python3-pytest, python3-wheel) needs no network; any that
# are missing come from PyPI.

SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON := $(firstword $(wildcard /usr/bin/python3) python3)
VENV := .venv
VPY := $(VENV)/bin/python
RBX := $(VENV)/bin/rootless-box
PYTEST_ARGS ?=

# Root runs the tests through scripts/ci-root.sh, as an unprivileged user; TEST_AS_ROOT=1 runs
# them as root directly (only for debugging the tests themselves).
ifeq ($(shell id -u),0)
ifeq ($(TEST_AS_ROOT),)
IS_ROOT := yes
endif
endif

.PHONY: help demo test test-load bench binary clean distclean

help:
	@echo "make demo       build a base image from host binaries and run a container in it"
	@echo "make test       run the test suite (as root: prepare the machine, run as rbxtest)"
	@echo "make test-load  the same beside two CPU-bound processes, as a busy CI machine runs it"
	@echo "make bench      run bench/*.py beside their peers, one table in bench/RESULTS.md (QUICK=1: smallest run counts)"
	@echo "make binary     one-file executable in dist/rootless-box (PyInstaller)"
	@echo "make clean      remove build output; distclean also removes .venv"

$(VPY):
	$(PYTHON) -m venv --system-site-packages $(VENV)

# Build isolation would fetch setuptools and wheel from PyPI on every install; the venv's own
# setuptools (>= 64 for PEP 660 editable installs) and the system's wheel do the same offline.
define pip_install
	if $(VPY) -c 'import sys, setuptools, wheel; sys.exit(int(setuptools.__version__.split(".")[0]) < 64)' 2>/dev/null; then
	    $(VPY) -m pip install -q --no-build-isolation --config-settings editable_mode=compat -e '$(1)'
	else
	    $(VPY) -m pip install -q --config-settings editable_mode=compat -e '$(1)'
	fi
endef

# Stamps, so that `make test` does not run pip each time; a change of pyproject.toml reinstalls.
$(VENV)/.rbx-installed: pyproject.toml | $(VPY)
	@echo "+ pip install -e . (into $(VENV))"
	$(call pip_install,.)
	$(VPY) -m compileall -q rootless_box >/dev/null
	touch $@

$(VENV)/.rbx-installed-test: pyproject.toml | $(VPY)
	@echo "+ pip install -e '.[test]' (into $(VENV))"
	$(call pip_install,.[test])
	touch $@

# The image is made from this machine's own binaries: no download. A static busybox is a whole
# userland in one file; else a handful of dynamic binaries with their libraries.
demo: $(VENV)/.rbx-installed
	@if [ -x /bin/busybox ] && $(VPY) -c 'import sys; from elftools.elf.elffile import ELFFile; sys.exit(any(s["p_type"] == "PT_INTERP" for s in ELFFile(open("/bin/busybox", "rb")).iter_segments()))'; then
	    set -- /bin/busybox
	else
	    set --
	    for p in /bin/sh /bin/ls /bin/cat /usr/bin/id /bin/echo /usr/bin/env; do
	        if [ -e "$$p" ]; then set -- "$$@" "$$p"; fi
	    done
	fi
	echo "+ rootless-box image from-host -t demo:latest $$*"
	$(RBX) image from-host -t demo:latest "$$@"
	echo "+ rootless-box run --rm demo:latest sh -c 'echo hello from a rootless container; id; ls /'"
	$(RBX) run --rm demo:latest sh -c 'echo hello from a rootless container; id; ls /'
	echo "+ rootless-box info"
	$(RBX) info

ifeq ($(IS_ROOT),yes)
test:
	@PYTEST_ARGS='$(PYTEST_ARGS)' bash scripts/ci-root.sh
else
test: $(VENV)/.rbx-installed-test
	@rc=0
	# The binary's smoke suite (tests/binary) runs against dist/rootless-box: built here when
	# PyInstaller can be installed (else those tests skip, saying so); a build that fails fails.
	if $(MAKE) --no-print-directory $(VENV)/.rbx-installed-binary; then
	    $(MAKE) --no-print-directory dist/rootless-box
	else
	    echo "make test: PyInstaller could not be installed; tests/binary will skip" >&2
	fi
	echo "+ $(VPY) -m pytest -ra $(PYTEST_ARGS) tests"
	$(VPY) -m pytest -ra $(PYTEST_ARGS) tests || rc=$$?
	if [ $$rc -eq 5 ]; then
	    echo "make test: pytest collected no tests, which counts as a failure" >&2
	fi
	exit $$rc
endif

# The suite on a busy machine: `make test` exactly as above (as root: the machine prepared and
# the tests run as the unprivileged user), beside RBX_LOAD_BURNERS (2) CPU-bound processes that
# end with it. A test that passes only on an idle CPU is a bug (issue 10).
test-load:
	@bash scripts/with-cpu-load.sh $(MAKE) --no-print-directory test

# Every bench/[!_]*.py (bench/_*.py are shared helpers) prints its own Markdown on stdout, its
# progress on stderr, and one JSON line per figure on fd 3 (BENCH_JSON_FD; the convention is in
# bench/_report.py), which merges them into ONE table in bench/RESULTS.md with the machine, the
# date and the load. QUICK=1 runs each script with its smallest run counts and says so in the
# header. BENCH_OUT=FILE writes elsewhere. Benchmarks refuse to run as root.
BENCH_OUT ?= bench/RESULTS.md
QUICK ?=
# podman-compose is a peer of bench/compose.py only, so it goes into the venv here, not with
# the package or its test extra.
$(VENV)/.bench-peers: $(VENV)/.rbx-installed
	$(VPY) -m pip install -q podman-compose
	touch $@

bench: $(VENV)/.rbx-installed $(VENV)/.bench-peers
	@work=$$(mktemp -d "$${TMPDIR:-/tmp}/rbx-bench-report-XXXXXX")
	trap 'rm -rf "$$work"' EXIT
	: > "$$work/rows.jsonl"
	$(VPY) bench/_report.py start "$$work"
	status=0
	for script in bench/[!_]*.py; do
	    [ -e "$$script" ] || continue
	    name=$$(basename "$$script" .py)
	    args=()
	    if [ -n "$(QUICK)" ]; then read -ra args <<< "$$($(VPY) bench/_report.py quick-args "$$name")"; fi
	    echo "== $$script $${args[*]}" >&2
	    rc=0
	    BENCH_JSON_FD=3 $(VPY) "$$script" "$${args[@]}" 3>>"$$work/rows.jsonl" | tee "$$work/$$name.md" || rc=$$?
	    echo "$$rc $${args[*]}" > "$$work/$$name.status"
	    if [ $$rc -ne 0 ]; then status=1; fi
	done
	$(VPY) bench/_report.py merge "$$work" > "$$work/RESULTS.md"
	cp "$$work/RESULTS.md" "$(BENCH_OUT)"
	echo "wrote $(BENCH_OUT)" >&2
	exit $$status

# One file, dist/rootless-box (pyinstaller.spec says how it is laid out). Rebuilt only when a
# source, the spec or the launcher changed: a build takes ~30 s.
$(VENV)/.rbx-installed-binary: pyproject.toml | $(VPY)
	@echo "+ pip install -e '.[binary]' (into $(VENV))"
	$(call pip_install,.[binary])
	touch $@

BINARY_SOURCES := pyinstaller.spec scripts/binary-launcher.sh scripts/write_build_info.py \
	$(shell find rootless_box -name '*.py' ! -name _build.py)

dist/rootless-box: $(BINARY_SOURCES) $(VENV)/.rbx-installed-binary
	@echo "+ pyinstaller pyinstaller.spec"
	$(VENV)/bin/pyinstaller --clean -y --log-level WARN pyinstaller.spec
	ls -l dist/rootless-box

binary: dist/rootless-box

clean:
	rm -rf ./build ./dist ./.pytest_cache ./*.egg-info bench/RESULTS.md.tmp
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
