// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The page's router: cockpit.location.path selects a view module, which renders into
// <main>.  Routes:
//   []                      pods overview (pods.js)
//   ["pod", NAME]           a pod (pod.js)
//   ["pod", NAME, "edit"]   edit its manifest (editor.js)
//   ["new"]                 create a pod (editor.js)
//   ["images"], ["images", NAME]   images, one image inspected (images.js)
//   ["trust"]               trusted keys (trust.js)
//   ["networks"]            networks (networks.js)
// A view module exports show(main, path) and may return a cleanup function, called
// before the next view is shown.  Views are imported when first shown, so one that fails
// to load breaks only itself, with a message, never the page.

import * as bus from "./bus.js";
import { alert, clear, emptyState, h, link, replace } from "./dom.js";

const cockpit = window.cockpit;

const VIEWS = {
    pods: () => import("./pods.js"),
    pod: () => import("./pod.js"),
    editor: () => import("./editor.js"),
    images: () => import("./images.js"),
    trust: () => import("./trust.js"),
    networks: () => import("./networks.js"),
};

const TABS = [
    { label: "Pods", tab: "pods", href: "" },
    { label: "Images", tab: "images", href: "images" },
    { label: "Trust", tab: "trust", href: "trust" },
    { label: "Networks", tab: "networks", href: "networks" },
];

// Which view a path shows, and which top tab it belongs to.
function route(path) {
    const [first, name, sub] = path;
    if (first === undefined)
        return { view: "pods", tab: "pods" };
    if (first === "pod" && name && sub === "edit" && path.length === 3)
        return { view: "editor", tab: "pods" };
    if (first === "pod" && name && path.length === 2)
        return { view: "pod", tab: "pods" };
    if (first === "new" && path.length === 1)
        return { view: "editor", tab: "pods" };
    if (first === "images" && path.length <= 2)
        return { view: "images", tab: "images" };
    if ((first === "trust" || first === "networks") && path.length === 1)
        return { view: first, tab: first };
    return null;
}

// Cockpit's own pages follow the shell's style setting (light, dark or the system's):
// the shell stores it in localStorage "shell:style" and sends "cockpit-style" events.
function applyTheme(style) {
    const chosen = style || window.localStorage.getItem("shell:style") || "auto";
    const systemDark = window.matchMedia?.("(prefers-color-scheme: dark)").matches;
    const dark = chosen === "dark" || (chosen === "auto" && systemDark);
    document.documentElement.classList.toggle("pf-theme-dark", Boolean(dark));
}

function followTheme() {
    window.addEventListener("storage", event => {
        if (event.key === "shell:style")
            applyTheme();
    });
    window.addEventListener("cockpit-style", event => applyTheme(event.detail?.style));
    window.matchMedia?.("(prefers-color-scheme: dark)").addEventListener("change", () => applyTheme());
    applyTheme();
}

function renderTabs(nav, current) {
    replace(nav, h("ul", { class: "pm-tabs-list", role: "tablist" },
                   TABS.map(({ label, tab, href }) => h("li", { class: "pm-tab", role: "presentation" },
                                                       link(label, `#/${href}`, {
                                                           role: "tab",
                                                           dataset: { tab },
                                                           "aria-selected": tab === current ? "true" : "false",
                                                           class: tab === current ? "pm-tab-current" : null,
                                                       })))));
}

async function readOnlyNotice(slot) {
    if (await bus.mayAct(bus.MANAGE_PODS))
        return;
    replace(slot, alert("info", "Read-only access",
                        "Turn on administrative access (at the top of Cockpit) to start, stop, " +
                        "create or change pods, images, keys and networks."));
}

let cleanup = null;
let generation = 0;

async function show(main, nav) {
    const mine = ++generation;
    if (cleanup) {
        try {
            cleanup();
        } catch (error) {
            console.warn("cleanup of the previous view failed:", error);
        }
        cleanup = null;
    }
    const path = cockpit.location.path;
    const target = route(path);
    renderTabs(nav, target?.tab);
    clear(main);
    if (!target) {
        main.appendChild(emptyState("Not found", "This page does not exist.",
                                    link("Back to the pods", "#/")));
        return;
    }
    let module;
    try {
        module = await VIEWS[target.view]();
    } catch (error) {
        if (mine === generation)
            main.appendChild(alert("danger", "This view failed to load", String(error)));
        return;
    }
    if (mine !== generation)
        return; // the user went elsewhere meanwhile
    const result = module.show(main, path);
    cleanup = typeof result === "function" ? result : null;
}

async function start() {
    followTheme();
    const nav = document.getElementById("tabs");
    const notice = h("div", { class: "pm-notice", id: "notice" });
    const main = document.getElementById("main");
    main.before(notice);
    let present;
    try {
        present = await bus.installed();
    } catch (error) {
        present = false;
    }
    if (!present) {
        renderTabs(nav, null);
        main.appendChild(emptyState(
            "podmgr is not installed",
            ["The podmgr service (org.podmgr1) is not installed on this system. Install the ",
                h("code", null, "podmgr"), " package, then reload this page."]));
        document.body.dataset.ready = "not-installed";
        return;
    }
    readOnlyNotice(notice);
    cockpit.addEventListener("locationchanged", () => show(main, nav));
    await show(main, nav);
    document.body.dataset.ready = "true";
}

cockpit.transport.wait(() => start());
