# SPDX-License-Identifier: LGPL-2.1-or-later
"""The units of an app's health check: pure, beside units.py, which calls render().

For app "web" of pod "shop" with [app.web.health] (names.py documents the names):

    podhealth@shop:web.service         runs the check once, in the app's confinement
    podhealth@shop:web.timer           runs it every interval while the app runs
    podhealth-failed@shop:web.service  counts a failed check (OnFailure= of the check)

and the app's own unit gets Wants= of the timer, a fresh state at each start, and, with
ready = "healthy", an ExecStartPost= that waits for the first passing check.

The check's confinement is the app's: the same functions write it (units.confine), so
the check has the app's root directory, namespaces, user, bounding set, NoNewPrivileges=,
system call filter and slice.  A pass costs no process of podmgr's: the check's own
ExecStartPost= lines (run with full privileges, outside the app's root: the "+" prefix)
clear the failures and touch the pass file.  Only a failure starts podmgr-pod, to count
it and, after retries of them, to restart or stop the app (runtime/health.py).  The
org.podmgr1 service is not involved: it reads the state files when asked.
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
    pod = manifest.name
    failures = str(runtime.health_failures(app.name))
    passed = str(runtime.health_passed(app.name))

    app_unit.add("Unit", "Wants", names.health_timer(pod, app.name))
    # Every start of the app begins "starting": no pass, no failure counted.
    app_unit.add("Service", "ExecStartPre", "+" + command_line(["/bin/rm", "-f", failures, passed]))
    if app.ready is Ready.HEALTHY:
        # The app is "activating" until this returns: units ordered after it wait.
        app_unit.add("Service", "ExecStartPost", "+" + helper("health-wait", pod, app.name, health))
        app_unit.add("Service", "TimeoutStartSec", format_duration(_start_timeout(health)))

    check = units.unit_of(manifest, f"Health check of app {app.name} of pod {pod}")
    # PartOf=, not BindsTo= with After=: ready = "healthy" runs the check while the app
    # is still starting, so the check must not wait for the app's start job.
    check.add("Unit", "PartOf", names.app_unit(pod, app.name))
    check.add("Unit", "OnFailure", names.health_failed_unit(pod, app.name))
    check.add("Unit", "AssertPathIsMountPoint", escape_specifiers(str(runtime.rootfs(app.name))))
    check.add("Service", "Type", "oneshot")
    check.add("Service", "Slice", names.pod_slice(pod))
    check.add("Service", "ExecStart", command_line(health.exec))
    # After a pass, in this order: a reader between the two sees "starting" or
    # "healthy", never a stale "unhealthy".
    check.add("Service", "ExecStartPost", "+" + command_line(["/bin/rm", "-f", failures]))
    check.add("Service", "ExecStartPost", "+" + command_line(["/bin/touch", passed]))
    check.add("Service", "TimeoutStartSec", format_duration(health.timeout))
    check.add("Service", "SyslogIdentifier", f"{app.name}-health")
    check.add("Service", "LogExtraFields", f"PODMGR_POD={pod}")
    check.add("Service", "LogExtraFields", f"PODMGR_APP={app.name}")
    units.confine(check, manifest, app, resolved, runtime)

    failed = units.unit_of(manifest, f"Failed health check of app {app.name} of pod {pod}")
    failed.add("Service", "Type", "oneshot")
    failed.add("Service", "ExecStart", helper("health-failed", pod, app.name, health))
    failed.add("Service", "SyslogIdentifier", f"{app.name}-health")
    failed.add("Service", "LogExtraFields", f"PODMGR_POD={pod}")
    failed.add("Service", "LogExtraFields", f"PODMGR_APP={app.name}")

    timer = units.unit_of(manifest, f"Health checks of app {app.name} of pod {pod}")
    # Started by the app's Wants=, once the app is active; stopped with it.
    timer.add("Unit", "BindsTo", names.app_unit(pod, app.name))
    timer.add("Unit", "After", names.app_unit(pod, app.name))
    # As Docker: the first check an interval after the start, then an interval after the
    # end of each check.
    timer.add("Timer", "OnActiveSec", format_duration(health.interval))
    timer.add("Timer", "OnUnitInactiveSec", format_duration(health.interval))
    timer.add("Timer", "AccuracySec", format_duration(ACCURACY))

    return [
        units.GeneratedFile(names.health_check_unit(pod, app.name), check.render()),
        units.GeneratedFile(names.health_failed_unit(pod, app.name), failed.render()),
        units.GeneratedFile(names.health_timer(pod, app.name), timer.render()),
    ]


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
