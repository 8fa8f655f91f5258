# SPDX-License-Identifier: LGPL-2.1-or-later
#
# make deps      install the Debian packages podmgr needs at run time (and for the demo)
# make install   install for /usr/bin/python3; honours DESTDIR, as distributions build
# make demo      run the example pod (in a throwaway systemd when PID 1 is not systemd)
# make demo-cockpit  the example pod and the Cockpit page, served on 127.0.0.1:9090
# make check     install what the checks need, then lint and format check (ruff), type
#                check, unit and integration tests
# make docs      regenerate the man pages and the annotated example from the key table
# make dist      the release tarball podmgr-VERSION.tar.gz (git archive of DIST_REF) in DISTDIR
# make deb       the .deb packages, built offline from that tarball, checked by lintian
# make rpm       the noarch .rpm packages, built offline from that tarball, checked by rpmlint
# make screenshots  renew docs/cockpit-pods.png (the Cockpit page) from its browser test
# make bench     every benchmark in bench/ (many pods at once, pod start, the generator,
#                pull, unpack, the D-Bus service, networking, sockets) into bench/RESULTS.md

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
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
# where bash-completion loads completions from on demand, and zsh's fpath (Debian's;
# Fedora's zsh reads $(PREFIX)/share/zsh/site-functions)
BASHCOMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPLETIONDIR ?= $(PREFIX)/share/zsh/vendor-completions
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
# image tests; bash-completion and zsh for the shell completion tests; systemd-container
# (systemd-machined, machinectl) for the machined tests
CHECK_DEBS = $(RUNTIME_DEBS) python3-venv busybox-static curl make iproute2 man-db gcc \
	libc6-dev skopeo docker-registry apache2-utils openssl zstd python3-dbus-fast \
	bash-completion zsh systemd-container $(PACKAGING_DEBS) $(COCKPIT_DEBS)
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

# The version is written in podmgr/version.py only.  VERSION=X makes a tarball and
# packages of version X from the same tree (a snapshot, as the upgrade test builds).
DIST_REF ?= HEAD
VERSION ?= $(shell git show $(DIST_REF):podmgr/version.py | sed -n 's/^__version__ = "\(.*\)"$$/\1/p')
DISTDIR ?= dist
DIST_NAME = podmgr-$(VERSION)
TARBALL = $(DISTDIR)/$(DIST_NAME).tar.gz

.PHONY: all deps install demo demo-here demo-cockpit check lint typecheck test docs bench \
	screenshots dist deb rpm

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
	@# Timers shipped disabled: systemctl enable --now podmgr-auto-update.timer podmgr-gc.timer
	install -m 644 units/podmgr-auto-update.service units/podmgr-auto-update.timer \
		units/podmgr-gc.service units/podmgr-gc.timer $(DESTDIR)$(UNITDIR)/
	install -d $(DESTDIR)$(DBUSDIR)/system.d $(DESTDIR)$(DBUSDIR)/system-services
	install -m 644 dbus/org.podmgr1.conf $(DESTDIR)$(DBUSDIR)/system.d/
	install -m 644 dbus/org.podmgr1.service $(DESTDIR)$(DBUSDIR)/system-services/
	install -d $(DESTDIR)$(POLKITDIR)/actions
	install -m 644 polkit/org.podmgr1.policy $(DESTDIR)$(POLKITDIR)/actions/
	@# -D: polkitd keeps rules.d its own (0700); install -d would change its mode
	install -D -m 644 polkit/50-podmgr.rules $(DESTDIR)$(POLKITDIR)/rules.d/50-podmgr.rules
	install -D -m 644 sysusers.d/podmgr.conf $(DESTDIR)$(SYSUSERSDIR)/podmgr.conf
	install -D -m 644 tmpfiles.d/podmgr.conf $(DESTDIR)$(TMPFILESDIR)/podmgr.conf
	install -d $(DESTDIR)/etc/podmgr/pods $(DESTDIR)$(PREFIX)/lib/podmgr/pods
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5
	install -m 644 docs/podmgr.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 docs/podmgr.toml.5 docs/org.podmgr1.5 $(DESTDIR)$(MANDIR)/man5/
	install -d $(DESTDIR)$(DOCDIR)/examples
	install -m 644 examples/*.toml examples/busybox-rootfs.sh $(DESTDIR)$(DOCDIR)/examples/
	install -d $(DESTDIR)$(COCKPITDIR)
	install -m 644 $(COCKPIT_FILES) $(DESTDIR)$(COCKPITDIR)/
	install -D -m 644 shell-completion/bash/podmgr $(DESTDIR)$(BASHCOMPLETIONDIR)/podmgr
	install -D -m 644 shell-completion/zsh/_podmgr $(DESTDIR)$(ZSHCOMPLETIONDIR)/_podmgr

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

# against each D-Bus library podmgr runs on (podmgr/bus/dbuslib.py)
typecheck: $(VENV)/bin/pytest
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --always-true DBUS_FAST

test: $(VENV)/bin/pytest
	$(VENV)/bin/pytest

docs:
	$(PYTHON) -m podmgr.cli.docs docs examples

# The tarball is what git archive makes of DIST_REF: the man pages and the annotated
# example are committed (test_docs.py keeps them current) and the Cockpit page has no
# build step, so a build needs nothing else and no network.  A VERSION other than the
# committed one is written into the tarball's podmgr/version.py, its man pages are
# rendered again, packaging/deb/changelog gets an entry for it and
# packaging/rpm/podmgr.spec its Version and a %changelog entry.  Reproducible: file
# times, owners and order come from the commit, not from this machine.
dist:
	@set -e; stage=$$(mktemp -d); trap 'rm -rf "$$stage"' EXIT; \
	tree=$$stage/$(DIST_NAME); mkdir "$$tree"; \
	git -c tar.umask=0022 archive --format=tar $(DIST_REF) | tar -x -C "$$tree"; \
	stamp=$$(git log -1 --format=%ct $(DIST_REF)); \
	committed=$$(sed -n 's/^__version__ = "\(.*\)"$$/\1/p' "$$tree/podmgr/version.py"); \
	if [ "$(VERSION)" != "$$committed" ]; then \
		sed -i 's/^__version__ = .*/__version__ = "$(VERSION)"/' "$$tree/podmgr/version.py"; \
		(cd "$$tree" && $(PYTHON) -m podmgr.cli.docs docs examples); \
		changelog=$$tree/packaging/deb/changelog; \
		{ printf 'podmgr (%s) unstable; urgency=medium\n\n  * Snapshot built from %s.\n\n -- %s  %s\n\n' \
			"$(VERSION)" "$$(git rev-parse --short $(DIST_REF))" \
			"$$(sed -n 's/^Maintainer: //p' packaging/deb/control)" \
			"$$(LC_ALL=C date -u -R -d @$$stamp)"; cat "$$changelog"; } > "$$changelog.new"; \
		mv "$$changelog.new" "$$changelog"; \
		spec=$$tree/packaging/rpm/podmgr.spec; \
		{ sed -e 's/^Version:.*/Version:        $(VERSION)/' -e '/^%changelog$$/q' "$$spec"; \
		  printf '* %s %s - %s-1\n- Snapshot built from %s\n\n' \
			"$$(LC_ALL=C date -u -d @$$stamp '+%a %b %d %Y')" \
			"$$(sed -n 's/^Maintainer: //p' packaging/deb/control)" \
			"$(VERSION)" "$$(git rev-parse --short $(DIST_REF))"; \
		  sed '1,/^%changelog$$/d' "$$spec"; } > "$$spec.new"; \
		mv "$$spec.new" "$$spec"; \
	fi; \
	mkdir -p $(DISTDIR); \
	tar --create --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$$stamp \
		-C "$$stage" $(DIST_NAME) | gzip -n > $(TARBALL).tmp; \
	mv $(TARBALL).tmp $(TARBALL); echo "$(TARBALL)"

# dpkg-buildpackage in the unpacked tarball, with packaging/deb as its debian/; the
# packages land in DISTDIR.  Offline: every build dependency is a host package (make deps).
deb: dist
	@set -e; build=$$(mktemp -d); trap 'rm -rf "$$build"' EXIT; \
	tar -x -z -f $(TARBALL) -C "$$build"; \
	cp -r "$$build/$(DIST_NAME)/packaging/deb" "$$build/$(DIST_NAME)/debian"; \
	changelog=$$(cd "$$build/$(DIST_NAME)" && dpkg-parsechangelog -S Version); \
	if [ "$$changelog" != "$(VERSION)" ]; then \
		echo "packaging/deb/changelog: version $$changelog is not podmgr/version.py's $(VERSION) (add an entry for $(VERSION))" >&2; \
		exit 1; \
	fi; \
	(cd "$$build/$(DIST_NAME)" && dpkg-buildpackage -us -uc -b); \
	lintian --pedantic -I --fail-on error,warning "$$build"/podmgr_$(VERSION)_*.changes; \
	echo "lintian --pedantic -I: done"; \
	for file in "$$build"/*.deb; do cp "$$file" $(DISTDIR)/; echo "$(DISTDIR)/$${file##*/}"; done

# rpmbuild -bb from the tarball, with Fedora's paths and scriptlets from the project's
# own macro file (Debian's rpm has no systemd or Python macros; Fedora's build does not
# load it), checked by rpmlint with Fedora's settings.  --nodeps: the BuildRequires are Fedora's names, and this machine's rpm
# database is empty; their Debian counterparts are host packages (make deps).  The
# packages land in DISTDIR.
rpm: dist
	@set -e; top=$$(mktemp -d); trap 'rm -rf "$$top"' EXIT; \
	mkdir -p "$$top/SOURCES"; cp $(TARBALL) "$$top/SOURCES/"; \
	tar -x -z -f $(TARBALL) -C "$$top" $(DIST_NAME)/packaging/rpm; \
	rpmdir=$$top/$(DIST_NAME)/packaging/rpm; spec=$$rpmdir/podmgr.spec; \
	specced=$$(sed -n 's/^Version: *//p' "$$spec"); \
	if [ "$$specced" != "$(VERSION)" ]; then \
		echo "packaging/rpm/podmgr.spec: Version $$specced is not podmgr/version.py's $(VERSION) (set it, and add a %changelog entry)" >&2; \
		exit 1; \
	fi; \
	rpmbuild -bb --nodeps --load "$$rpmdir/macros.podmgr" --define "_topdir $$top" "$$spec" \
		> "$$top/build.log" 2>&1 || { cat "$$top/build.log" >&2; exit 1; }; \
	rpmlint --strict -c "$$rpmdir/rpmlint.toml" -r "$$rpmdir/podmgr.rpmlintrc" "$$spec" "$$top"/RPMS/noarch/*.rpm; \
	for file in "$$top"/RPMS/noarch/*.rpm; do cp "$$file" $(DISTDIR)/; echo "$(DISTDIR)/$${file##*/}"; done

# The README's screenshot of the Cockpit page, from the browser test's own screenshot step
screenshots: $(VENV)/bin/pytest
	PODMGR_SCREENSHOTS=$(CURDIR)/docs $(VENV)/bin/pytest -q \
		tests/test_cockpit_pods.py::test_the_page_follows_cockpits_light_and_dark_style

# podman and skopeo are baselines of the start and pull benchmarks.  The tables
# go to bench/RESULTS.md (bench/run.py).
bench: deps
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		podman crun conmon catatonit skopeo
	$(PYTHON) bench/run.py
