// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Pod networks (ListNetworks): subnet, bridge, flags and the prepared pods on each,
// re-read whenever bus.watchPods says pods may have started or stopped; removal through
// RemoveNetwork, which the service refuses while a pod is on the network (its message is
// shown as it is).  Route: ["networks"].

import * as bus from "./bus.js";
import { alert, busy, button, card, confirm, emptyState, h, link, replace, spinner, table } from "./dom.js";

function flags(masquerade, isolate) {
    const set = [masquerade && "masquerade", isolate && "isolate"].filter(Boolean);
    if (set.length === 0)
        return h("span", { class: "pm-muted" }, "none");
    return h("div", { class: "pm-labels" }, set.map(flag => h("span", { class: "pm-badge", dataset: { flag } }, flag)));
}

function pods(names) {
    if (names.length === 0)
        return h("span", { class: "pm-muted" }, "none");
    return h("ul", { class: "pm-plain-list" },
             names.map(name => h("li", null, link(name, `#/pod/${encodeURIComponent(name)}`))));
}

export function show(main) {
    const notice = h("div", { class: "pm-errors" });
    const body = h("div", { class: "pm-networks" }, spinner("Loading networks"));
    const allowed = bus.mayAct(bus.MANAGE_PODS);
    let reading = 0;

    async function remove(btn, name) {
        const confirmed = await confirm({
            title: `Remove network ${name}?`,
            body: h("p", null, "Its bridge, its firewall rules and ",
                    h("code", null, `/etc/podmgr/networks/${name}.toml`), " are removed. ",
                    "Pods that name it will not start until it is defined again."),
            action: "remove-network",
            label: "Remove",
            danger: true,
        });
        if (!confirmed)
            return;
        await busy(btn, async () => {
            try {
                await bus.manager("RemoveNetwork", "s", [name]);
            } catch (error) {
                replace(notice, alert("danger", `Cannot remove network ${name}`, bus.toError(error).message));
                return;
            }
            replace(notice, alert("success", "Network removed", `Removed network ${name}.`));
            await refresh();
        });
    }

    async function refresh() {
        const mine = ++reading;
        try {
            const [networks] = await bus.manager("ListNetworks");
            const may = await allowed;
            if (mine !== reading)
                return;
            networks.sort(([a], [b]) => a.localeCompare(b));
            replace(body, networks.length === 0
                ? emptyState("No networks",
                             h("p", null, "A network is defined in ", h("code", null, "/etc/podmgr/networks/NAME.toml"),
                               "; bridged pods use the network podmgr (10.87.0.0/16 on podmgr0) unless they name one."))
                : table({
                    columns: ["Network", "Subnet", "Bridge", "Flags", "Pods", { title: "", class: "pm-table-actions" }],
                    rows: networks,
                    key: ([name]) => name,
                    cells: ([name, subnet, bridge, masquerade, isolate, names]) => {
                        const removeButton = button("Remove", {
                            action: "remove-network",
                            small: true,
                            disabled: !may,
                            title: may ? null : "Needs administrative access",
                        });
                        removeButton.addEventListener("click", () => remove(removeButton, name));
                        return [
                            h("strong", null, name),
                            h("span", { class: "pm-mono" }, subnet),
                            h("span", { class: "pm-mono" }, bridge),
                            flags(masquerade, isolate),
                            pods(names),
                            removeButton,
                        ];
                    },
                }));
            body.dataset.loaded = String(mine);
        } catch (error) {
            if (mine === reading)
                replace(body, alert("danger", "Cannot list the networks", bus.toError(error).message));
        }
    }

    main.appendChild(h("div", { class: "pm-stack" }, notice, card("Networks", { id: "networks", body })));
    const stop = bus.watchPods(refresh);
    refresh();
    return stop;
}
