# SPDX-License-Identifier: LGPL-2.1-or-later
"""The units of an app's health check: pure, beside units.py, which calls render().

For app "web" of pod "shop" with [app.web.health] (names.py documents the names):

    podhealth@shop:web.service         runs the check once, in the app's confinement
    podhealth@shop:web.timer           runs it every interval while the app runs
    podhealth-passed@shop:web.service  records a pass (OnSuccess= of the check)
    podhealth-failed@shop:web.service  counts a failure (OnFailure= of the check) and,
                                       after retries of them, restarts or stops the app
    podhealth-reset@shop:web.service   clears the app's health before each of its starts
    podhealth-ready@shop:web.service   with ready = "healthy" only: runs the check until
                                       it passes, then tells systemd the app is ready

The check's confinement is the app's: the same functions write it (units.confine), so
the check has the app's root directory, namespaces, user, bounding set, NoNewPrivileges=,
system call filter and slice.  What runs outside it is in units of its own, as every
command of a unit with RootDirectory= runs in that root ("+" lifts privilege limits, not
the root).  A pass starts no Python: two small commands record it.  Only a failure starts
podmgr-pod (runtime/health.py) to count it.  The org.podmgr1 service is not involved: it
reads the state files when asked.

With ready = "healthy" the app is Type=notify, and podhealth-ready sends READY=1 on its
behalf (as its main process, which root may) once a check passed: so the app's unit is
"activating" until then, and the units ordered after it wait, as for podman's
Notify=healthy.
"""

from __future__ import annotations

from podmgr import names, paths
from podmgr.generator import units
from podmgr.generator.resolve import ResolvedApp
from podmgr.generator.unitfile import UnitFile, command_line, escape_specifiers
from podmgr.limits import DURATION_MAX
from podmgr.manifest.model import App, Health, Manifest
from podmgr.manifest.schema import Ready
from podmgr.quantities import format_duration

# How late a timer may fire: small, since a check's interval may be a second.
ACCURACY = 100_000
# The part of an app's start that is the app's own, before its first check: systemd's
# default TimeoutStartSec=.
START_TIMEOUT = 90 * 10**6


def helper(verb: str, pod: str, app: str, health: Health) -> str:
    """The podmgr-pod command line for ``verb`` (runtime/health.py reads it back)."""
    return command_line(
        [
            paths.POD_HELPER,
            verb,
            pod,
            app,
            f"--interval={health.interval}",
            f"--retries={health.retries}",
            f"--start-period={health.start_period}",
            f"--on-failure={health.on_failure.value}",
        ]
    )


def render(
    manifest: Manifest,
    app: App,
    resolved: ResolvedApp,
    runtime: paths.PodRuntime,
    app_unit: UnitFile,
) -> list[units.GeneratedFile]:
    """The check's units; adds what the app's unit needs to ``app_unit``."""
    health = app.health
    assert health is not None
    pod, name = manifest.name, app.name
    wanted = [names.health_reset_unit(pod, name), names.health_timer(pod, name)]
    if app.ready is Ready.HEALTHY:
        wanted.append(names.health_ready_unit(pod, name))
        app_unit.add("Service", "TimeoutStartSec", format_duration(_start_timeout(health)))
    app_unit.add_words("Unit", "Wants", wanted)

    made = _Units(manifest, name)
    _check(made, manifest, app, health, resolved, runtime)
    _bookkeeping(made, health, runtime)
    if app.ready is Ready.HEALTHY:
        # Not ordered against the app: it waits for the app's main process itself.
        ready = made.unit(names.health_ready_unit(pod, name), "Readiness")
        ready.add("Unit", "PartOf", made.app_unit)
        ready.add("Unit", "After", names.health_reset_unit(pod, name))
        ready.add("Service", "Type", "oneshot")
        ready.add("Service", "ExecStart", helper("health-wait", pod, name, health))
        ready.add("Service", "TimeoutStartSec", format_duration(_start_timeout(health)))
        made.logged(ready)
    return [units.GeneratedFile(path, unit.render()) for path, unit in made.units.items()]


class _Units:
    """The units made for one app's check, by name."""

    def __init__(self, manifest: Manifest, app: str) -> None:
        self.manifest = manifest
        self.pod = manifest.name
        self.app = app
        self.app_unit = names.app_unit(self.pod, app)
        self.units: dict[str, UnitFile] = {}

    def unit(self, name: str, description: str, often: bool = False) -> UnitFile:
        """``often``: started at every check, more often than systemd's default start
        limit (5 in 10 s) allows when the interval is short."""
        what = f"{description} of app {self.app} of pod {self.pod}"
        self.units[name] = units.unit_of(self.manifest, what)
        if often:
            self.units[name].add("Unit", "StartLimitIntervalSec", 0)
        return self.units[name]

    def logged(self, unit: UnitFile) -> None:
        """In the pod's journal (podmgr logs), beside the app's lines."""
        unit.add("Service", "SyslogIdentifier", f"{self.app}-health")
        unit.add("Service", "LogExtraFields", f"PODMGR_POD={self.pod}")
        unit.add("Service", "LogExtraFields", f"PODMGR_APP={self.app}")


def _check(
    made: _Units,
    manifest: Manifest,
    app: App,
    health: Health,
    resolved: ResolvedApp,
    runtime: paths.PodRuntime,
) -> None:
    pod, name = made.pod, made.app
    check = made.unit(names.health_check_unit(pod, name), "Health check", often=True)
    # PartOf=, not BindsTo= with After=: ready = "healthy" runs the check while the app
    # is still starting, so the check must not wait for the app's start job.
    check.add("Unit", "PartOf", made.app_unit)
    check.add("Unit", "OnSuccess", names.health_passed_unit(pod, name))
    check.add("Unit", "OnFailure", names.health_failed_unit(pod, name))
    check.add("Unit", "AssertPathIsMountPoint", escape_specifiers(str(runtime.rootfs(name))))
    check.add("Service", "Type", "oneshot")
    check.add("Service", "Slice", names.pod_slice(pod))
    check.add("Service", "ExecStart", command_line(health.exec))
    check.add("Service", "TimeoutStartSec", format_duration(health.timeout))
    made.logged(check)
    units.confine(check, manifest, app, resolved, runtime)

    timer = made.unit(names.health_timer(pod, name), "Health checks")
    # Started with the app (its Wants=), stopped with it.  Not After= the app: a timer is
    # ordered before the unit it triggers, so the check would wait for the app's start,
    # which with ready = "healthy" waits for the check.  After the state's reset, which is
    # after the pod's prepare, as the app is.
    timer.add("Unit", "BindsTo", made.app_unit)
    timer.add("Unit", "After", names.health_reset_unit(pod, name))
    # As Docker: the first check an interval after the start, then an interval after the
    # end of each check.
    timer.add("Timer", "OnActiveSec", format_duration(health.interval))
    timer.add("Timer", "OnUnitInactiveSec", format_duration(health.interval))
    timer.add("Timer", "AccuracySec", format_duration(ACCURACY))


def _bookkeeping(made: _Units, health: Health, runtime: paths.PodRuntime) -> None:
    """The units that keep the app's health state files (runtime/health.py)."""
    pod, name = made.pod, made.app
    failures = str(runtime.health_failures(name))
    passed = str(runtime.health_passed(name))

    # In this order: a reader between the two sees "starting" or "healthy", never a
    # stale "unhealthy".
    passing = made.unit(names.health_passed_unit(pod, name), "Passed health check", often=True)
    passing.add("Service", "Type", "oneshot")
    passing.add("Service", "ExecStart", command_line(["/bin/rm", "-f", failures]))
    passing.add("Service", "ExecStart", command_line(["/bin/touch", passed]))

    failing = made.unit(names.health_failed_unit(pod, name), "Failed health check", often=True)
    failing.add("Service", "Type", "oneshot")
    failing.add("Service", "ExecStart", helper("health-failed", pod, name, health))
    made.logged(failing)

    # Every start of the app begins "starting": restarted and stopped with the app
    # (PartOf=), and done before it starts.
    reset = made.unit(names.health_reset_unit(pod, name), "Health state")
    reset.add("Unit", "PartOf", made.app_unit)
    reset.add("Unit", "After", names.pod_unit(pod))
    reset.add("Unit", "Before", made.app_unit)
    reset.add("Service", "Type", "oneshot")
    reset.add("Service", "RemainAfterExit", True)
    reset.add("Service", "ExecStart", command_line(["/bin/rm", "-f", failures, passed]))


def _start_timeout(health: Health) -> int:
    """TimeoutStartSec= of an app with ready = "healthy": long enough for the start period
    and retries failed checks after it, so that the wait ends with a verdict of its own
    ("unhealthy") rather than systemd's timeout."""
    total = (
        START_TIMEOUT
        + health.start_period
        + (health.retries + 1) * (health.interval + health.timeout)
    )
    return min(total, DURATION_MAX)
