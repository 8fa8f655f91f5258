// SPDX-License-Identifier: LGPL-2.1-or-later
//
// A pod's page: its state and actions (Start, Stop, Restart through org.podmgr1), each
// app with what systemd says of its unit (state, restarts, memory, CPU), the manifest's
// details, and the pod's journal, followed live while the page is open.

import * as bus from "./bus.js";
import { appConsole } from "./console.js";
import {
    alert, button, busy, card, clear, descriptionList, emptyState, formatBytes, formatDuration,
    h, inlineError, link, replace, spinner, stateLabel, table,
} from "./dom.js";
import { appHealth, healthLabel } from "./health.js";
import { portText, problemLines } from "./pods.js";

const cockpit = window.cockpit;

// systemd sends no signal when a unit's counters (memory, CPU) change, so the apps'
// numbers are read again this often while the page is open; states come from signals.
const COUNTERS_MS = 5000;
const JOURNAL_LINES = 200; // kept on the page; older lines drop off the end
const PRIORITIES = [
    ["7", "Debug and above"],
    ["6", "Info and above"],
    ["5", "Notice and above"],
    ["4", "Warning and above"],
    ["3", "Error and above"],
];

// A link into Cockpit's own Services page, which shows the unit in full.
function serviceLink(unit) {
    // Unit names of pods are [a-z0-9_.:@-]: nothing to escape in a fragment.
    const href = `/system/services#/${unit}`;
    return link(unit, href, {
        class: "pm-unit-link",
        dataset: { unit },
        on: {
            click: event => {
                event.preventDefault();
                cockpit.jump(href);
            },
        },
    });
}

function counter(value, format) {
    return value === null || value === undefined ? h("span", { class: "pm-muted" }, "–") : format(value);
}

function appsTable(apps, units, pod) {
    return table({
        columns: ["App", "Unit", "State", "Restarts", "Memory", "CPU"],
        rows: apps,
        key: ([app]) => app,
        empty: "This pod has no apps.",
        cells: ([app, unit, state]) => {
            const props = units.get(unit) || {};
            return [
                h("span", { class: "pm-app-name" }, app),
                serviceLink(unit),
                h("span", { class: "pm-app-state" },
                  stateLabel(props.ActiveState || state), healthLabel(appHealth(pod, app))),
                counter(props.NRestarts, String),
                counter(props.MemoryCurrent, formatBytes),
                counter(props.CPUUsageNSec, formatDuration),
            ];
        },
    });
}

function details(pod) {
    const annotations = Object.entries(pod.Annotations || {}).sort(([a], [b]) => a.localeCompare(b));
    const none = () => h("span", { class: "pm-muted" }, "none");
    const items = (list, render = x => x) =>
        list && list.length ? h("ul", { class: "pm-plain-list" }, list.map(x => h("li", null, render(x)))) : none();
    return descriptionList([
        ["Manifest", h("code", { class: "pm-manifest-path" }, pod.ManifestPath || "")],
        ["Unit", serviceLink(pod.Unit || `pod@${pod.Name}.service`)],
        ["Images", items(pod.Images)],
        ["Addresses", items(pod.Addresses)],
        // a service without the Ports property shows nothing here, not "none"
        pod.Ports === undefined ? null : ["Published ports", items(pod.Ports, portText)],
        ["Annotations", annotations.length
            ? h("ul", { class: "pm-plain-list pm-annotations" },
                annotations.map(([key, value]) => h("li", { dataset: { key } }, h("code", null, key), " = ", value)))
            : none()],
    ]);
}

// One journal entry (journalctl --output=json); fields may be byte arrays.
function field(entry, name) {
    const value = entry[name];
    if (Array.isArray(value))
        return new TextDecoder().decode(new Uint8Array(value));
    return value === undefined || value === null ? "" : String(value);
}

function journalLine(entry) {
    const micros = Number(field(entry, "__REALTIME_TIMESTAMP"));
    const time = Number.isFinite(micros) ? new Date(micros / 1000).toLocaleTimeString() : "";
    const priority = Number(field(entry, "PRIORITY") || 6);
    const cls = priority <= 3 ? "pm-journal-error" : priority === 4 ? "pm-journal-warning" : null;
    return h("div", { class: ["pm-journal-line", cls], dataset: { priority, app: field(entry, "PODMGR_APP") } },
             h("span", { class: "pm-journal-time" }, time),
             h("span", { class: "pm-journal-app" }, field(entry, "PODMGR_APP") || field(entry, "SYSLOG_IDENTIFIER")),
             h("span", { class: "pm-journal-message" }, field(entry, "MESSAGE")));
}

// journalctl --follow for the pod, newest first; restarted when a filter changes.
const NO_ENTRIES = "No entries yet.";
// journalctl shows a user without the right to the system's journal nothing, and says
// nothing about it either while it follows
const NO_ENTRIES_LIMITED = "No entries yet. Without administrative access only the entries " +
    "you may read are shown (the system's journal is for administrators and the groups " +
    "adm and systemd-journal).";

function journal(name, appSelect, prioritySelect, output) {
    let process = null;
    let pending = "";
    let empty = NO_ENTRIES;

    function stop() {
        if (process) {
            process.close("cancelled");
            process = null;
        }
    }

    function start() {
        stop();
        pending = "";
        for (const notice of output.parentElement?.querySelectorAll(".pm-journal-notice") ?? [])
            notice.remove();
        replace(output, h("p", { class: "pm-journal-empty" }, empty));
        const argv = ["journalctl", "--output=json", "--follow", `--lines=${JOURNAL_LINES}`,
            `--priority=${prioritySelect.value}`, `PODMGR_POD=${name}`];
        if (appSelect.value)
            argv.push(`PODMGR_APP=${appSelect.value}`);
        // stderr too: journalctl says there why a user sees no entries (no permission)
        const mine = cockpit.spawn(argv, { superuser: "try", err: "out" });
        process = mine;
        mine.stream(data => {
            if (process !== mine)
                return;
            pending += data;
            const lines = pending.split("\n");
            pending = lines.pop();
            const entries = [];
            for (const line of lines) {
                if (!line.trim())
                    continue;
                let entry = null;
                try {
                    entry = JSON.parse(line);
                } catch (error) {
                    // not an entry: what journalctl itself says, shown as it says it
                    output.before(h("p", { class: "pm-journal-notice pm-muted" }, line));
                    continue;
                }
                entries.push(journalLine(entry));
            }
            if (!entries.length)
                return;
            output.querySelector(".pm-journal-empty")?.remove();
            output.prepend(...entries.reverse());
            while (output.childElementCount > JOURNAL_LINES)
                output.lastElementChild.remove();
        });
        mine.catch(error => {
            if (process !== mine || error.problem === "cancelled")
                return;
            // journalctl's own words, e.g. that this user may not read the system's journal
            const said = [...output.parentElement.querySelectorAll(".pm-journal-notice")];
            const why = said.map(notice => notice.textContent).join(" ") || cockpit.message(error);
            said.forEach(notice => notice.remove());
            replace(output, alert("warning", "Cannot read the journal", why));
        });
    }

    appSelect.addEventListener("change", start);
    prioritySelect.addEventListener("change", start);
    bus.superuser().then(admin => {
        empty = admin ? NO_ENTRIES : NO_ENTRIES_LIMITED;
        const shown = output.querySelector(".pm-journal-empty");
        if (shown)
            shown.textContent = empty;
    });
    return { start, stop };
}

function select(label, id, options, value) {
    const control = h("select", { class: "pm-select", id },
                      options.map(([optionValue, text]) => h("option", { value: optionValue }, text)));
    control.value = value;
    return [h("label", { for: id }, label), control];
}

export function show(main, path) {
    const name = path[1];
    const header = h("div", { class: "pm-page-header" });
    const problems = h("div", { class: "pm-problems-slot" });
    const actionError = h("div", { class: "pm-action-error", "aria-live": "polite" });
    const appsBody = h("div", null, spinner("Loading apps"));
    const detailsBody = h("div", null, spinner("Loading details"));
    const [appLabel, appSelect] = select("App", "journal-app", [["", "All apps"]], "");
    const [priorityLabel, prioritySelect] = select("Priority", "journal-priority", PRIORITIES, "6");
    const journalOutput = h("div", { class: "pm-journal", id: "journal", role: "log" });
    const log = journal(name, appSelect, prioritySelect, journalOutput);
    const shell = appConsole(name);

    main.append(
        h("nav", { class: "pm-breadcrumb", "aria-label": "Breadcrumb" },
          link("Pods", "#/"), h("span", null, name)),
        header, problems, actionError,
        card("Apps", { id: "apps", body: appsBody }),
        card("Details", { id: "details", body: detailsBody }),
        card("Console", { id: "console-card", body: shell.element }),
        card("Journal", {
            id: "journal-card",
            body: [h("div", { class: "pm-toolbar" }, h("div", { class: "pm-field" }, appLabel, appSelect),
                     h("div", { class: "pm-field" }, priorityLabel, prioritySelect)), journalOutput],
        }));

    const actions = {};
    for (const [action, label, method] of [["start", "Start", "StartPod"], ["stop", "Stop", "StopPod"],
        ["restart", "Restart", "RestartPod"]]) {
        actions[action] = button(label, {
            action,
            kind: action === "start" ? "primary" : "secondary",
            onclick: () => busy(actions[action], () => bus.manager(method, "s", [name]), actionError)
                    .then(refresh),
        });
    }
    actions.edit = button("Edit", {
        action: "edit",
        kind: "secondary",
        onclick: () => cockpit.location.go(["pod", name, "edit"]),
    });

    let pod = null;
    let allowed = false;
    let units = new Map();
    let reads = 0;
    let knownApps = "";

    function renderHeader() {
        const state = pod ? pod.State : "";
        for (const btn of Object.values(actions)) {
            if (btn.classList.contains("pm-busy"))
                continue;
            btn.disabled = !allowed;
            btn.title = allowed ? "" : "Needs administrative access";
        }
        if (allowed) {
            actions.start.disabled = state === "active" || state === "activating";
            actions.stop.disabled = state === "inactive" || state === "invalid";
        }
        replace(header,
                h("h1", { class: "pm-title" }, name, state ? stateLabel(state) : null,
                  healthLabel(pod?.Health)),
                h("div", { class: "pm-actions" }, actions.start, actions.stop, actions.restart, actions.edit));
    }

    async function readUnits(apps) {
        const found = new Map();
        await Promise.all(apps.map(async ([, unit]) => {
            try {
                const props = await bus.unitProperties(unit);
                if (props)
                    found.set(unit, props);
            } catch (error) {
                console.warn(`cannot read ${unit}:`, error);
            }
        }));
        return found;
    }

    const refresh = bus.serialized(async () => {
        try {
            const [podPath] = await bus.manager("GetPod", "s", [name]);
            const props = await bus.podProperties(podPath);
            const apps = props.Apps || [];
            const read = await readUnits(apps);
            pod = props;
            units = read;
        } catch (exception) {
            const error = bus.toError(exception);
            // Nothing to show (no such pod, a name the service refuses ...): say so
            // instead of the page.  A pod shown before keeps its page, with the error.
            if (error.name === "org.podmgr1.Error.NoSuchPod" || pod === null) {
                pod = null;
                const title = error.name === "org.podmgr1.Error.NoSuchPod"
                    ? `Pod ${name} not found`
                    : `Cannot show pod ${name}`;
                clear(main).appendChild(emptyState(title, error.message, link("Back to the pods", "#/")));
                main.dataset.loaded = String(++reads);
                stopAll();
                return;
            }
            inlineError(actionError, error);
            return;
        }
        renderHeader();
        replace(problems, pod.State === "invalid"
            ? alert("danger", "The manifest does not load",
                    h("ul", { class: "pm-problems" }, problemLines(pod).map(line => h("li", null, line))))
            : null);
        replace(appsBody, appsTable(pod.Apps || [], units, pod));
        replace(detailsBody, details(pod));
        const appNames = (pod.Apps || []).map(([app]) => app);
        if (appNames.join("\n") !== knownApps) {
            knownApps = appNames.join("\n");
            const chosen = appSelect.value;
            replace(appSelect, h("option", { value: "" }, "All apps"),
                    appNames.map(app => h("option", { value: app }, app)));
            appSelect.value = appNames.includes(chosen) ? chosen : "";
        }
        shell.update(appNames, allowed);
        main.dataset.loaded = String(++reads);
    });

    async function refreshCounters() {
        if (!pod || cockpit.hidden)
            return;
        const read = await readUnits(pod.Apps || []);
        if (!pod)
            return;
        units = read;
        replace(appsBody, appsTable(pod.Apps || [], units, pod));
    }

    const stopWatching = bus.watchPods(refresh);
    const counters = window.setInterval(refreshCounters, COUNTERS_MS);
    function stopAll() {
        stopWatching();
        window.clearInterval(counters);
        log.stop();
        shell.close();
    }

    bus.mayAct(bus.MANAGE_PODS).then(result => {
        allowed = result;
        renderHeader();
        shell.update((pod?.Apps || []).map(([app]) => app), allowed);
        main.dataset.allowed = String(result); // polkit's answer is in: tests wait for it
    });
    renderHeader();
    refresh();
    log.start();
    return stopAll;
}
