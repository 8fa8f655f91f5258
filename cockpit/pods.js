// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The pods overview: every pod with a manifest (ListPods, then each Pod's properties),
// re-read through org.podmgr1 whenever bus.watchPods says something changed.  A pod whose
// manifest does not load is listed with its problems, as the service words them.

import * as bus from "./bus.js";
import { alert, button, card, emptyState, h, link, replace, spinner, stateLabel, table } from "./dom.js";
import { healthLabel } from "./health.js";

// "FILE: KEY: what is wrong", the form podmgr validate prints.
export function problemLines(pod) {
    const lines = (pod.Problems || []).map(([key, message]) =>
        [pod.ManifestPath, key, message].filter(Boolean).join(": "));
    // a service without the Problems property still says the manifest does not load
    if (lines.length === 0 && pod.ManifestPath)
        lines.push(`${pod.ManifestPath}: does not load (podmgr validate ${pod.ManifestPath} says why)`);
    return lines;
}

export function portText([address, hostPort, podPort, protocol]) {
    const host = address ? (address.includes(":") ? `[${address}]:${hostPort}` : `${address}:${hostPort}`) : hostPort;
    return `${host} → ${podPort}/${protocol}`;
}

function appsText(apps) {
    if (!apps || apps.length === 0)
        return "";
    const active = apps.filter(([, , state]) => state === "active").length;
    return `${active} of ${apps.length} active`;
}

function list(items, cls) {
    if (!items || items.length === 0)
        return null;
    return h("ul", { class: ["pm-plain-list", cls] }, items.map(item => h("li", null, item)));
}

async function readPods() {
    const pods = await bus.listPods();
    return Promise.all(pods.map(async pod => {
        try {
            return { ...(await bus.podProperties(pod.path)), Name: pod.name, State: pod.state };
        } catch (error) {
            // gone between ListPods and GetAll: the next signal re-reads
            return { Name: pod.name, State: pod.state, error: bus.toError(error) };
        }
    }));
}

function podsTable(pods) {
    return table({
        columns: ["Pod", "State", "Apps", "Images", "Addresses", "Ports"],
        rows: pods,
        key: pod => pod.Name,
        rowAttrs: pod => ({ class: pod.State === "invalid" ? "pm-row-invalid" : null }),
        // what is wrong with a pod gets the table's whole width, below its row
        detail: pod => pod.State === "invalid"
            ? list(problemLines(pod), "pm-problems")
            : pod.error ? h("div", { class: "pm-inline-error" }, pod.error.message) : null,
        cells: pod => [
            link(pod.Name, `#/pod/${encodeURIComponent(pod.Name)}`, { class: "pm-pod-name" }),
            h("span", { class: "pm-pod-state" }, stateLabel(pod.State), healthLabel(pod.Health)),
            h("span", { class: "pm-nowrap" }, appsText(pod.Apps)),
            list(pod.Images),
            list(pod.Addresses),
            list((pod.Ports || []).map(portText)),
        ],
    });
}

function empty() {
    return emptyState(
        "No pods",
        [h("p", null, "A pod is a TOML manifest: ",
           h("code", null, "/etc/podmgr/pods/NAME.toml"), ". Create one here, or write the file ",
           "and run ", h("code", null, "systemctl daemon-reload"), "; it then appears in this list."),
        h("p", null, "Each key is described in ", h("code", null, "man podmgr.toml"), ".")],
        button("Create pod", { action: "create", kind: "primary", onclick: () => window.cockpit.location.go(["new"]) }));
}

export function show(main) {
    const body = h("div", { class: "pm-pods" }, spinner("Loading pods"));
    const create = button("Create pod", { action: "create", kind: "primary", onclick: () => window.cockpit.location.go(["new"]) });
    bus.mayAct(bus.MANAGE_PODS).then(allowed => {
        create.disabled = !allowed;
        if (!allowed)
            create.title = "Needs administrative access";
    });
    main.appendChild(card("Pods", { id: "pods", actions: [create], body }));
    let reads = 0;

    const refresh = bus.serialized(async () => {
        try {
            const pods = await readPods();
            pods.sort((a, b) => a.Name.localeCompare(b.Name));
            replace(body, pods.length ? podsTable(pods) : empty());
        } catch (error) {
            replace(body, alert("danger", "Cannot list the pods", bus.toError(error).message));
        }
        body.dataset.loaded = String(++reads);
    });

    const stop = bus.watchPods(refresh);
    refresh();
    return stop;
}
