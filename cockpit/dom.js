// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Element builders for the page.  Every name and message shown comes from the bus or
// the journal and is hostile: it only ever becomes a text node (textContent), never
// markup, so nothing here parses HTML.  Styles are classes of style.css (Cockpit's
// content security policy forbids inline styles).
//
// API (every view builds on it; extend it, do not change it):
//
//   h(tag, attrs, ...children) -> Element
//       attrs: null or {name: value}.  "class" (string or array, falsy entries dropped),
//       "dataset" ({key: value} -> data-key), "on" ({event: handler}), boolean
//       attributes (disabled, hidden, checked, readonly ...) set when true, anything
//       else through setAttribute (null/undefined/false skip it).  children: strings
//       and numbers become text nodes, Nodes are appended, arrays are flattened,
//       null/undefined/false are skipped.
//   text(value) -> Text node of String(value)
//   clear(element) -> element without children
//   replace(element, ...children) -> element with only these children
//   button(label, {action, kind, onclick, disabled, title, small}) -> <button>
//       kind: "primary" | "secondary" (default) | "danger" | "link" | "plain";
//       action: the data-action attribute the tests use (start, stop, ...).
//   link(label, href, attrs) -> <a>
//   table({columns, rows, key, cells, empty, caption, rowAttrs}) -> <table class="pm-table">
//       columns: [title | {title, class}]; rows: array; key(row): the row's data-name;
//       cells(row): array of cell contents (one per column); empty: what to show in
//       one full-width cell when rows is empty; rowAttrs(row): extra attrs of the <tr>;
//       detail(row): null, or what to show in a full-width row below the row's own
//       (<tr class="pm-table-detail" data-detail-of=KEY>).
//   card(title, {actions, body, id, class}) -> <section class="pm-card">
//       title: string or Node; actions: [Node] at the right of the title;
//       body: children of the card's body.
//   alert(kind, title, message) -> <div class="pm-alert pm-alert-KIND" role="alert">
//       kind: "danger" | "warning" | "info" | "success".
//   inlineError(slot, error) -> slot: shows error.message (an Error, a string) in the
//       slot element as an inline danger alert, or clears it when error is null.
//   emptyState(title, body, ...actions) -> <div class="pm-empty-state">
//   spinner(label) -> <span class="pm-spinner" role="progressbar" aria-label=label>
//   stateLabel(state) -> <span class="pm-state pm-state-STATE"> with the state's word
//   descriptionList([[term, value], ...]) -> <dl class="pm-dl"> (value: string or Node;
//       a null item is left out)
//   busy(button, fn, errorSlot) -> Promise: disables the button and shows a spinner
//       while fn() (a Promise) runs; a rejection is shown in errorSlot (inlineError)
//       when given, and resolves to undefined; otherwise it is re-thrown.
//   confirm({title, body, action, label, danger}) -> Promise<boolean>: a modal dialog
//       (<dialog class="pm-modal">); body: string or Node; action: data-action of the
//       confirming button; resolves true when confirmed, false when cancelled.
//   formatBytes(n) -> "1.5 MiB"; formatDuration(nanoseconds) -> "1.2 s"

const BOOLEAN_ATTRIBUTES = new Set([
    "disabled", "hidden", "checked", "readonly", "required", "selected", "multiple", "open",
    "autofocus",
]);

export function text(value) {
    return document.createTextNode(String(value));
}

function append(element, child) {
    if (child === null || child === undefined || child === false)
        return;
    if (Array.isArray(child)) {
        for (const item of child)
            append(element, item);
    } else if (child instanceof Node) {
        element.appendChild(child);
    } else {
        element.appendChild(text(child));
    }
}

export function h(tag, attrs, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
        if (value === null || value === undefined || value === false)
            continue;
        if (name === "class") {
            const classes = Array.isArray(value) ? value : [value];
            for (const cls of classes.filter(Boolean))
                element.classList.add(...String(cls).split(/\s+/).filter(Boolean));
        } else if (name === "dataset") {
            for (const [key, data] of Object.entries(value))
                if (data !== null && data !== undefined)
                    element.dataset[key] = String(data);
        } else if (name === "on") {
            for (const [event, handler] of Object.entries(value))
                element.addEventListener(event, handler);
        } else if (BOOLEAN_ATTRIBUTES.has(name)) {
            element[name] = Boolean(value);
        } else if (name === "value") {
            element.value = String(value);
        } else {
            element.setAttribute(name, String(value));
        }
    }
    append(element, children);
    return element;
}

export function clear(element) {
    while (element.firstChild)
        element.removeChild(element.firstChild);
    return element;
}

export function replace(element, ...children) {
    clear(element);
    append(element, children);
    return element;
}

export function button(label, options = {}) {
    const { action, kind = "secondary", onclick, disabled, title, small } = options;
    return h("button", {
        type: "button",
        class: ["pm-button", `pm-button-${kind}`, small && "pm-button-small"],
        dataset: { action },
        disabled,
        title,
        on: onclick ? { click: onclick } : null,
    }, label);
}

export function link(label, href, attrs = {}) {
    return h("a", { ...attrs, href, class: ["pm-link", attrs.class] }, label);
}

export function table({ columns, rows, key, cells, empty, caption, rowAttrs, detail }) {
    const head = h("thead", null, h("tr", null, columns.map(column => {
        const { title, class: cls } = typeof column === "string" ? { title: column } : column;
        return h("th", { scope: "col", class: cls }, title);
    })));
    const body = h("tbody");
    if (rows.length === 0 && empty !== undefined) {
        body.appendChild(h("tr", { class: "pm-table-empty" },
                           h("td", { colspan: columns.length }, empty)));
    }
    for (const row of rows) {
        const extra = rowAttrs ? rowAttrs(row) : {};
        const tr = h("tr", { ...extra, dataset: { ...(extra.dataset || {}), name: key ? key(row) : undefined } });
        cells(row).forEach((cell, index) => {
            const column = columns[index];
            const label = typeof column === "string" ? column : column?.title;
            tr.appendChild(h("td", { "data-label": label }, cell));
        });
        body.appendChild(tr);
        const more = detail ? detail(row) : null;
        if (more) {
            tr.classList.add("pm-has-detail");
            body.appendChild(h("tr", { class: "pm-table-detail", dataset: { detailOf: key ? key(row) : undefined } },
                               h("td", { colspan: columns.length }, more)));
        }
    }
    return h("table", { class: "pm-table" }, caption ? h("caption", null, caption) : null, head, body);
}

export function card(title, { actions, body, id, class: cls } = {}) {
    return h("section", { class: ["pm-card", cls], id },
             h("header", { class: "pm-card-header" },
               h("h2", { class: "pm-card-title" }, title),
               actions && actions.length ? h("div", { class: "pm-card-actions" }, actions) : null),
             h("div", { class: "pm-card-body" }, body));
}

export function alert(kind, title, message) {
    return h("div", { class: ["pm-alert", `pm-alert-${kind}`], role: "alert" },
             h("span", { class: "pm-alert-icon", "aria-hidden": "true" }),
             h("div", { class: "pm-alert-text" },
               h("p", { class: "pm-alert-title" }, title),
               message ? h("p", { class: "pm-alert-message" }, message) : null));
}

export function inlineError(slot, error) {
    clear(slot);
    if (error === null || error === undefined)
        return slot;
    const message = typeof error === "string" ? error : (error.message || String(error));
    slot.appendChild(h("div", { class: "pm-inline-error", role: "alert" },
                       h("span", { class: "pm-alert-icon", "aria-hidden": "true" }), message));
    return slot;
}

export function emptyState(title, body, ...actions) {
    return h("div", { class: "pm-empty-state" },
             h("h2", { class: "pm-empty-state-title" }, title),
             body ? h("div", { class: "pm-empty-state-body" }, body) : null,
             actions.length ? h("div", { class: "pm-empty-state-actions" }, actions) : null);
}

export function spinner(label = "Loading") {
    return h("span", { class: "pm-spinner", role: "progressbar", "aria-label": label });
}

export function stateLabel(state) {
    const known = ["active", "inactive", "failed", "activating", "deactivating", "reloading",
        "invalid", "maintenance"];
    const cls = known.includes(state) ? state : "other";
    return h("span", { class: ["pm-state", `pm-state-${cls}`], dataset: { state } }, state);
}

export function descriptionList(items) {
    return h("dl", { class: "pm-dl" },
             items.filter(Boolean).map(([term, value]) => h("div", { class: "pm-dl-group" },
                                             h("dt", null, term), h("dd", null, value))));
}

export async function busy(btn, fn, errorSlot) {
    const wasDisabled = btn.disabled;
    btn.disabled = true;
    btn.classList.add("pm-busy");
    btn.setAttribute("aria-busy", "true");
    const spin = spinner("Working");
    btn.prepend(spin);
    if (errorSlot)
        inlineError(errorSlot, null);
    try {
        return await fn();
    } catch (error) {
        if (!errorSlot)
            throw error;
        inlineError(errorSlot, error);
        return undefined;
    } finally {
        spin.remove();
        btn.classList.remove("pm-busy");
        btn.removeAttribute("aria-busy");
        btn.disabled = wasDisabled;
    }
}

export function confirm({ title, body, action = "confirm", label = "Confirm", danger = false }) {
    return new Promise(resolve => {
        const dialog = h("dialog", { class: "pm-modal", "aria-labelledby": "pm-modal-title" });
        const done = result => {
            dialog.close();
            dialog.remove();
            resolve(result);
        };
        dialog.append(
            h("header", { class: "pm-modal-header" }, h("h1", { id: "pm-modal-title" }, title)),
            h("div", { class: "pm-modal-body" }, body),
            h("footer", { class: "pm-modal-footer" },
              button(label, { action, kind: danger ? "danger" : "primary", onclick: () => done(true) }),
              button("Cancel", { action: "cancel-dialog", kind: "link", onclick: () => done(false) })));
        dialog.addEventListener("cancel", event => {
            event.preventDefault();
            done(false);
        });
        document.body.appendChild(dialog);
        dialog.showModal();
    });
}

export function formatBytes(bytes) {
    if (bytes === null || bytes === undefined || !Number.isFinite(bytes))
        return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
        value /= 1024;
        unit++;
    }
    return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatDuration(nanoseconds) {
    if (nanoseconds === null || nanoseconds === undefined || !Number.isFinite(nanoseconds))
        return "";
    const seconds = nanoseconds / 1e9;
    if (seconds < 1)
        return `${Math.round(nanoseconds / 1e6)} ms`;
    if (seconds < 60)
        return `${seconds.toFixed(1)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60)
        return `${minutes} min ${Math.round(seconds % 60)} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}
