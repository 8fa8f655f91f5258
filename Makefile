# SPDX-License-Identifier: LGPL-2.1-or-later
#
# make deps      install the Debian packages podmgr needs at run time (and for the demo)
# make install   install for /usr/bin/python3; honours DESTDIR, as distributions build
# make demo      run the example pod (in a throwaway systemd when PID 1 is not systemd)
# make demo-cockpit  the example pod and the Cockpit page, served on 127.0.0.1:9090
# make check     install what the checks need, then lint and format check (ruff), type
#                check, unit and integration tests
# make docs      regenerate the man pages and the annotated example from the key table
# make screenshots  renew docs/cockpit-pods.png (the Cockpit page) from its browser test
# make bench     pod start against bare units and podman, the generator over 1000 pods,
#                images, the D-Bus service and pod networking (bench/)

PYTHON ?= /usr/bin/python3
DESTDIR ?=
PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/lib/podmgr
UNITDIR ?= $(PREFIX)/lib/systemd/system
GENERATORDIR ?= $(PREFIX)/lib/systemd/system-generators
MANDIR ?= $(PREFIX)/share/man
DBUSDIR ?= $(PREFIX)/share/dbus-1
POLKITDIR ?= $(PREFIX)/share/polkit-1
DOCDIR ?= $(PREFIX)/share/doc/podmgr
COCKPITDIR ?= $(PREFIX)/share/cockpit/podmgr
# the Cockpit page: installed flat, as it is (no build step; cockpit/README says why)
COCKPIT_FILES = cockpit/manifest.json cockpit/index.html cockpit/style.css \
	$(sort $(wildcard cockpit/*.js))
# Debian installs distribution packages into dist-packages; others into site-packages.
PYTHONDIR ?= $(shell $(PYTHON) -c 'import sysconfig as s; \
	print(s.get_path("purelib", "deb_system" if "deb_system" in s.get_scheme_names() \
	else None, vars={"base": "$(PREFIX)"}))')

VENV = .venv
RUNTIME_DEBS = python3 python3-dbus-next python3-pystemd python3-pyroute2 python3-gnupg \
	python3-xdg python3-toml python3-zstandard python3-nftables gnupg systemd libnss-systemd dbus \
	polkitd nftables \
	util-linux
# busybox-static for the example rootfs, curl for the demo, gcc and libc6-dev for static
# test helpers; skopeo, docker-registry, apache2-utils (htpasswd) and openssl for the
# image tests
CHECK_DEBS = $(RUNTIME_DEBS) python3-venv busybox-static curl make iproute2 man-db gcc \
	libc6-dev skopeo docker-registry apache2-utils openssl zstd python3-dbus-fast \
	$(PACKAGING_DEBS) $(COCKPIT_DEBS)
# what `make deb` and `make rpm` build with (offline)
PACKAGING_DEBS = debhelper dh-python python3-all pkgconf lintian rpm rpmlint
# Cockpit and the browser of the page's tests (Playwright drives Debian's chromium); sudo
# is how Cockpit switches on administrative access, which the page's tests log in to use
COCKPIT_DEBS = cockpit-ws cockpit-bridge cockpit-system chromium sudo

# entry point = module whose main() it runs
ENTRY_POINTS = $(BINDIR)/podmgr=cli.command \
	$(GENERATORDIR)/podmgr-generator=generator.generator \
	$(LIBEXECDIR)/podmgr-pod=runtime.prepare \
	$(LIBEXECDIR)/podmgr1=bus.service

.PHONY: all deps install demo demo-here demo-cockpit check lint typecheck test docs bench \
	screenshots

all:
	@echo "targets: deps install demo check docs"

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$(CHECK_DEBS)

install:
	@set -e; for file in $$(find podmgr -name '*.py' | sort); do \
		install -D -m 644 $$file $(DESTDIR)$(PYTHONDIR)/$$file; \
	done
	$(PYTHON) -m compileall -q -d $(PYTHONDIR)/podmgr $(DESTDIR)$(PYTHONDIR)/podmgr
	@set -e; for entry in $(ENTRY_POINTS); do \
		path=$${entry%=*}; module=$${entry#*=}; \
		echo "install $$path"; \
		install -d $(DESTDIR)$$(dirname $$path); \
		printf '#!%s\nimport sys\nfrom podmgr.%s import main\nsys.exit(main())\n' \
			$(PYTHON) $$module > $(DESTDIR)$$path; \
		chmod 755 $(DESTDIR)$$path; \
	done
	install -d $(DESTDIR)$(UNITDIR)
	install -m 644 units/pod@.service units/pod.slice units/podmgr1.service \
		$(DESTDIR)$(UNITDIR)/
	install -d $(DESTDIR)$(DBUSDIR)/system.d $(DESTDIR)$(DBUSDIR)/system-services
	install -m 644 dbus/org.podmgr1.conf $(DESTDIR)$(DBUSDIR)/system.d/
	install -m 644 dbus/org.podmgr1.service $(DESTDIR)$(DBUSDIR)/system-services/
	install -d $(DESTDIR)$(POLKITDIR)/actions
	install -m 644 polkit/org.podmgr1.policy $(DESTDIR)$(POLKITDIR)/actions/
	install -d $(DESTDIR)/etc/podmgr/pods $(DESTDIR)$(PREFIX)/lib/podmgr/pods
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5
	install -m 644 docs/podmgr.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 docs/podmgr.toml.5 docs/org.podmgr1.5 $(DESTDIR)$(MANDIR)/man5/
	install -d $(DESTDIR)$(DOCDIR)/examples
	install -m 644 examples/*.toml polkit/50-podmgr.rules $(DESTDIR)$(DOCDIR)/examples/
	install -d $(DESTDIR)$(COCKPITDIR)
	install -m 644 $(COCKPIT_FILES) $(DESTDIR)$(COCKPITDIR)/

# Outside systemd (PID 1 is something else), boot a throwaway one and run the demo there.
demo:
	@if [ "$$(cat /proc/1/comm)" = systemd ]; then \
		$(MAKE) --no-print-directory deps install demo-here && \
		if [ -d /usr/share/cockpit/base1 ]; then \
			echo "The Cockpit page: https://$$(hostname -f):9090/podmgr (menu: Pods)"; \
		fi; \
	else \
		$(MAKE) --no-print-directory deps && \
		$(PYTHON) tests/bed.py --install -- $(MAKE) --no-print-directory -C $(CURDIR) demo-here && \
		echo "The Cockpit page with the demo pod: make demo-cockpit (http://127.0.0.1:$(COCKPIT_PORT)/podmgr)"; \
	fi

demo-here:
	examples/demo.sh

# The demo pod and the Cockpit page served from a throwaway systemd on the host's
# 127.0.0.1:$(COCKPIT_PORT) (logged in as its root); Ctrl-C ends both.
COCKPIT_PORT ?= 9090
demo-cockpit: $(VENV)/bin/pytest
	$(MAKE) --no-print-directory deps
	$(VENV)/bin/python tests/cockpit.py --demo --port $(COCKPIT_PORT)

$(VENV)/bin/pytest: tests/requirements.txt
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(VENV)/bin/pip install -q -r tests/requirements.txt
	touch $@

check: deps $(VENV)/bin/pytest lint typecheck test

lint: $(VENV)/bin/pytest
	$(VENV)/bin/ruff check podmgr tests bench
	$(VENV)/bin/ruff format --check podmgr tests bench

typecheck: $(VENV)/bin/pytest
	$(VENV)/bin/mypy

test: $(VENV)/bin/pytest
	$(VENV)/bin/pytest

docs:
	$(PYTHON) -m podmgr.cli.docs docs examples

# The README's screenshot of the Cockpit page, from the browser test's own screenshot step
screenshots: $(VENV)/bin/pytest
	PODMGR_SCREENSHOTS=$(CURDIR)/docs $(VENV)/bin/pytest -q \
		tests/test_cockpit_pods.py::test_the_page_follows_cockpits_light_and_dark_style

# podman is the second baseline of the start benchmark.
bench: deps
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		podman crun conmon catatonit
	$(PYTHON) bench/start.py
	$(PYTHON) bench/images.py
	$(PYTHON) bench/pull.py
	$(PYTHON) bench/dbus.py
	$(PYTHON) bench/network.py
