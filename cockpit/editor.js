// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Creating and editing a pod's manifest: routes ["new"] and ["pod", NAME, "edit"].
//
// The page repeats no logic of the service.  The text is checked as it is typed
// (debounced) by ValidateManifest, and each problem is shown beside the line it is about;
// finding that line from the problem's key path is the only thing done here, and it is
// presentation only (a problem whose line cannot be found is listed above the text).
// Saving goes through CreatePod, or UpdatePodIfUnchanged with the digest of the file the
// editor was loaded from, so polkit and validation always apply and a change made on disk
// meanwhile is never overwritten blindly: the service refuses (ManifestChanged), and the
// page shows the change as soon as the Pod's ManifestDigest changes or the file's
// directory reports a change (fswatch1, for when the service has exited while idle).

import * as bus from "./bus.js";
import { alert, button, busy, card, clear, confirm, h, inlineError, link, replace, spinner } from "./dom.js";

const cockpit = window.cockpit;
const PROPERTIES = "org.freedesktop.DBus.Properties";
const VALIDATE_MS = 300;
const CHANGED = "org.podmgr1.Error.ManifestChanged";

// --- Where a problem is: its key path to a line of the TOML text ---------------------

// A key or header "a.\"b c\".d" as its parts, quotes removed.
function splitKey(text) {
    const parts = [];
    let current = "";
    let quote = null;
    for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (quote) {
            if (c === "\\" && quote === '"' && i + 1 < text.length)
                current += text[++i];
            else if (c === quote)
                quote = null;
            else
                current += c;
        } else if (c === '"' || c === "'") {
            quote = c;
        } else if (c === ".") {
            parts.push(current.trim());
            current = "";
        } else {
            current += c;
        }
    }
    parts.push(current.trim());
    return parts;
}

// The part of a line before an unquoted "=", or null when it has none.
function keyOf(line) {
    let quote = null;
    for (let i = 0; i < line.length; i++) {
        const c = line[i];
        if (quote) {
            if (c === "\\" && quote === '"')
                i++;
            else if (c === quote)
                quote = null;
        } else if (c === '"' || c === "'") {
            quote = c;
        } else if (c === "=") {
            return line.slice(0, i).trim();
        } else if (c === "#") {
            return null;
        }
    }
    return null;
}

// Every table header and key of the text, as a path joined with NUL, to its line (1-based).
// Arrays of tables ([[a.b]]) count their entries, as the service's paths do: a.b[0].
export function keyLines(text) {
    const lines = new Map();
    const counts = new Map();
    let table = [];
    let inMultiline = null;
    text.split("\n").forEach((raw, index) => {
        const number = index + 1;
        const line = raw.trim();
        if (inMultiline) {
            if (line.includes(inMultiline))
                inMultiline = null;
            return;
        }
        const header = /^\[\[(.+)\]\]\s*(#.*)?$/.exec(line) || /^\[([^[].*)\]\s*(#.*)?$/.exec(line);
        if (header) {
            const parts = splitKey(header[1]);
            if (line.startsWith("[[")) {
                const base = parts.join("\0");
                const n = counts.get(base) ?? 0;
                counts.set(base, n + 1);
                parts[parts.length - 1] += `[${n}]`;
                if (!lines.has(base))
                    lines.set(base, number);
            }
            table = parts;
            const path = table.join("\0");
            if (!lines.has(path))
                lines.set(path, number);
            return;
        }
        const key = keyOf(line);
        if (key === null || key === "")
            return;
        const path = [...table, ...splitKey(key)].join("\0");
        if (!lines.has(path))
            lines.set(path, number);
        const rest = line.slice(line.indexOf("=") + 1).trim();
        for (const delimiter of ['"""', "'''"]) {
            if (rest.startsWith(delimiter) && !rest.slice(3).includes(delimiter))
                inMultiline = delimiter;
        }
    });
    return lines;
}

// The service's path of a problem ("app.web.exec[0]", "app.\"my app\".user") as parts,
// each array index kept on its part ("exec[0]").
function problemParts(where) {
    return splitKey(where).filter(part => part !== "");
}

// The line a problem is about, or null: "line L, column C", "end of file", or the
// nearest enclosing key or table that the text has.
export function lineOf(where, lines, lineCount) {
    const position = /^line (\d+), column \d+$/.exec(where);
    if (position)
        return Math.min(Number(position[1]), lineCount);
    if (where === "end of file")
        return lineCount;
    if (!where)
        return null;
    let parts = problemParts(where);
    while (parts.length) {
        const found = lines.get(parts.join("\0"));
        if (found !== undefined)
            return found;
        const last = parts[parts.length - 1];
        const unindexed = last.replace(/\[\d+\]$/, "");
        parts = unindexed !== last ? [...parts.slice(0, -1), unindexed] : parts.slice(0, -1);
    }
    return null;
}

// --- The text editor: a textarea with line numbers and problems beside the lines -------

function editorWidget(onInput) {
    const gutter = h("div", { class: "pm-editor-gutter", "aria-hidden": "true" });
    const lens = h("div", { class: "pm-editor-lens", "aria-hidden": "true" });
    const textarea = h("textarea", {
        class: "pm-editor-text",
        id: "pm-manifest-text",
        spellcheck: "false",
        autocomplete: "off",
        autocapitalize: "off",
        wrap: "off",
        "aria-label": "Manifest (TOML)",
        placeholder: '[app.web]\nimage = "registry.example.org/web:1"\nexec = ["/usr/sbin/httpd", "-f"]',
    });
    const box = h("div", { class: "pm-editor" }, gutter, h("div", { class: "pm-editor-area" }, lens, textarea));
    let problemsByLine = new Map();

    function render() {
        const lines = textarea.value.split("\n");
        replace(gutter, lines.map((_, i) => h("div", {
            class: ["pm-editor-number", problemsByLine.has(i + 1) && "pm-editor-number-problem"],
            dataset: { line: i + 1 },
        }, String(i + 1))));
        // The lens repeats each line invisibly, so that a problem's message starts where
        // its line's text ends, in the textarea's own font.
        replace(lens, lines.map((line, i) => {
            const messages = problemsByLine.get(i + 1);
            return h("div", { class: "pm-editor-lens-line" },
                     h("span", { class: "pm-editor-ghost" }, line),
                     messages
                         ? h("span", { class: "pm-editor-problem", dataset: { line: i + 1 } }, messages.join("; "))
                         : null);
        }));
        scroll();
    }

    function scroll() {
        gutter.scrollTop = textarea.scrollTop;
        lens.scrollTop = textarea.scrollTop;
        lens.scrollLeft = textarea.scrollLeft;
    }

    textarea.addEventListener("input", () => {
        render();
        onInput(textarea.value);
    });
    textarea.addEventListener("scroll", scroll);
    textarea.addEventListener("keydown", event => {
        if (event.key === "Tab" && !event.shiftKey && !event.ctrlKey && !event.altKey && !event.metaKey) {
            // Indent rather than leave the editor; Esc then Tab leaves it (as in Cockpit's
            // own text areas, the keyboard is never trapped).
            if (textarea.dataset.escaped === "true")
                return;
            event.preventDefault();
            textarea.setRangeText("    ", textarea.selectionStart, textarea.selectionEnd, "end");
            render();
            onInput(textarea.value);
        }
        textarea.dataset.escaped = String(event.key === "Escape");
    });

    return {
        element: box,
        textarea,
        get value() {
            return textarea.value;
        },
        set value(text) {
            textarea.value = text;
            render();
        },
        setProblems(map) {
            problemsByLine = map;
            render();
        },
        setDisabled(disabled) {
            textarea.readOnly = disabled;
        },
        // Put the caret at the start of line NUMBER, scrolled into view.
        goTo(number) {
            const before = textarea.value.split("\n").slice(0, number - 1).join("\n");
            const offset = number > 1 ? before.length + 1 : 0;
            textarea.focus();
            textarea.setSelectionRange(offset, offset);
            const lineHeight = textarea.scrollHeight / Math.max(1, textarea.value.split("\n").length);
            textarea.scrollTop = Math.max(0, (number - 3) * lineHeight);
            scroll();
        },
    };
}

// --- The view ---------------------------------------------------------------------------

function breadcrumb(name) {
    return h("nav", { class: "pm-breadcrumb", "aria-label": "Breadcrumb" },
             link("Pods", "#/"),
             name ? link(name, `#/pod/${encodeURIComponent(name)}`) : null,
             h("span", { "aria-current": "page" }, name ? "Edit manifest" : "Create pod"));
}

function problemItem(where, message) {
    return h("li", { class: "pm-editor-problem-item", dataset: { where } },
             where ? h("code", null, where) : null,
             where ? ": " : null,
             message);
}

export function show(main, path) {
    const editing = path[0] === "pod";
    const name = editing ? path[1] : null;
    let podPath = null;
    let digest = ""; // of the file the text was loaded from (or last saved)
    let savedText = null; // what this editor last loaded or saved
    let checking = 0; // the newest validation asked for
    let timer = null;
    let stopped = false;
    const cleanups = [];

    const nameInput = h("input", {
        class: "pm-input",
        id: "pm-pod-name",
        type: "text",
        name: "name",
        autocomplete: "off",
        spellcheck: "false",
        "aria-describedby": "pm-pod-name-help",
        placeholder: "web",
    });
    const nameHelp = h("p", { class: "pm-help", id: "pm-pod-name-help" },
                       "Stored as /etc/podmgr/pods/NAME.toml; the service checks the name.");
    nameInput.addEventListener("input", () => {
        replace(nameHelp, nameInput.value
            ? ["Stored as ", h("code", null, `/etc/podmgr/pods/${nameInput.value}.toml`)]
            : "Stored as /etc/podmgr/pods/NAME.toml; the service checks the name.");
    });

    const status = h("span", { class: "pm-editor-status", id: "pm-validation", role: "status" });
    const unplaced = h("ul", { class: "pm-problems pm-editor-unplaced", id: "pm-problems" });
    const notice = h("div", { class: "pm-editor-notice", id: "pm-editor-notice" });
    const errorSlot = h("div", { class: "pm-editor-error", id: "pm-editor-error" });
    const widget = editorWidget(text => scheduleValidation(text));

    function setStatus(kind, ...content) {
        status.dataset.state = kind;
        replace(status, content);
    }

    function showProblems(text, problems) {
        const lines = keyLines(text);
        const count = text.split("\n").length;
        const byLine = new Map();
        const items = [];
        let first = null;
        for (const [where, message] of problems) {
            const line = lineOf(where, lines, count);
            // Beside its line, "line 3, column 7" says only the column.
            const shown = where.replace(/^line \d+, (column \d+)$/, "$1");
            if (line)
                byLine.set(line, [...(byLine.get(line) || []), shown ? `${shown}: ${message}` : message]);
            else
                items.push(problemItem(where, message));
            if (line && (first === null || line < first))
                first = line;
        }
        widget.setProblems(byLine);
        replace(unplaced, items);
        const counted = `${problems.length} ${problems.length === 1 ? "problem" : "problems"}`;
        if (problems.length === 0)
            setStatus("valid", "✓ No problems");
        else if (first === null)
            setStatus("invalid", counted);
        else
            setStatus("invalid", button(counted, { kind: "link", small: true, onclick: () => widget.goTo(first) }));
    }

    async function validate(text) {
        const mine = ++checking;
        setStatus("checking", spinner("Checking"), " Checking…");
        try {
            const [problems] = await bus.manager("ValidateManifest", "s", [text]);
            // A newer text has its own check coming: these problems are of the old one.
            if (mine === checking && !stopped && widget.value === text)
                showProblems(text, problems);
        } catch (exception) {
            if (mine === checking && !stopped)
                setStatus("error", `Cannot check: ${bus.toError(exception).message}`);
        }
    }

    function scheduleValidation(text) {
        if (timer !== null)
            window.clearTimeout(timer);
        timer = window.setTimeout(() => {
            timer = null;
            validate(text);
        }, VALIDATE_MS);
    }

    // A change of the file on disk: shown, never applied over the user's text unasked.
    function showChange(disk) {
        replace(notice, h("div", { class: "pm-alert pm-alert-warning", role: "alert", id: "pm-disk-changed" },
                          h("span", { class: "pm-alert-icon", "aria-hidden": "true" }),
                          h("div", { class: "pm-alert-text" },
                            h("p", { class: "pm-alert-title" }, "The manifest was changed on disk"),
                            h("p", { class: "pm-alert-message" },
                              "Someone changed ", h("code", null, disk.ManifestPath),
                              " since this editor loaded it. Reload it (your changes here are lost), " +
                              "or overwrite it with the text here."),
                            h("div", { class: "pm-actions pm-alert-actions" },
                              button("Reload from disk", {
                                  action: "reload",
                                  kind: "secondary",
                                  onclick: () => load(disk),
                              }),
                              button("Overwrite with this text", {
                                  action: "overwrite",
                                  kind: "danger",
                                  onclick: event => busy(event.currentTarget, () => save(disk.ManifestDigest),
                                                         errorSlot),
                              })))));
    }

    function load(pod) {
        digest = pod.ManifestDigest;
        savedText = pod.Manifest;
        widget.value = pod.Manifest;
        clear(notice);
        inlineError(errorSlot, null);
        validate(pod.Manifest);
    }

    // The file as the service reads it now; a change that is not this editor's own save
    // is shown.
    async function recheck() {
        if (!podPath || stopped)
            return;
        let pod;
        try {
            pod = await bus.podProperties(podPath);
        } catch (exception) {
            return; // the pod went away: saving says so
        }
        if (stopped || !pod.ManifestDigest || pod.ManifestDigest === digest)
            return;
        if (pod.Manifest === savedText || pod.Manifest === widget.value) {
            digest = pod.ManifestDigest; // the same text: nothing to tell
            return;
        }
        showChange(pod);
    }

    function watchFile(pod) {
        cleanups.push(bus.subscribe({ interface: PROPERTIES, path: podPath, member: "PropertiesChanged" },
                                    (p, iface, member, [, changed, invalidated]) => {
                                        if ("ManifestDigest" in (changed || {}) ||
                                            (invalidated || []).includes("ManifestDigest"))
                                            recheck();
                                    }));
        const directory = pod.ManifestPath.slice(0, pod.ManifestPath.lastIndexOf("/"));
        const channel = cockpit.channel({ payload: "fswatch1", path: directory, superuser: "try" });
        channel.addEventListener("message", (event, data) => {
            let change = {};
            try {
                change = JSON.parse(data);
            } catch (error) {
                return;
            }
            if (!change.path || change.path === pod.ManifestPath)
                recheck();
        });
        cleanups.push(() => channel.close());
    }

    async function offerRestart(pod) {
        const restart = button("Restart to apply", {
            action: "restart",
            kind: "primary",
            onclick: event => busy(event.currentTarget, async () => {
                await bus.manager("RestartPod", "s", [name]);
                replace(notice, alert("success", `Pod ${name} restarted`, "It runs with the saved manifest."));
            }, errorSlot),
        });
        const message = pod.State === "active" || pod.State === "activating" || pod.State === "reloading"
            ? ["The pod keeps running on its old units until it is restarted. ", restart]
            : "It applies when the pod starts next.";
        replace(notice, h("div", { class: "pm-alert pm-alert-success", role: "status", id: "pm-saved" },
                          h("span", { class: "pm-alert-icon", "aria-hidden": "true" }),
                          h("div", { class: "pm-alert-text" },
                            h("p", { class: "pm-alert-title" }, `Saved ${pod.ManifestPath}`),
                            h("p", { class: "pm-alert-message" }, message))));
    }

    async function save(base = digest) {
        const text = widget.value;
        if (!editing) {
            const [created] = await bus.manager("CreatePod", "ss", [nameInput.value, text]);
            savedText = text;
            cockpit.location.go(["pod", nameInput.value]);
            return created;
        }
        try {
            await bus.manager("UpdatePodIfUnchanged", "sss", [name, base, text]);
        } catch (exception) {
            const error = bus.toError(exception);
            if (error.name === CHANGED) {
                await recheck();
                if (!notice.querySelector("#pm-disk-changed"))
                    throw error;
                return undefined;
            }
            throw error;
        }
        savedText = text;
        const pod = await bus.podProperties(podPath);
        if (pod.Manifest === text)
            digest = pod.ManifestDigest;
        await offerRestart(pod);
        return undefined;
    }

    async function remove() {
        const confirmed = await confirm({
            title: `Delete pod ${name}?`,
            body: h("p", null, "The pod is stopped, ", h("code", null, `/etc/podmgr/pods/${name}.toml`),
                    " is removed and systemd forgets its units. This cannot be undone."),
            action: "confirm-delete",
            label: "Delete",
            danger: true,
        });
        if (!confirmed)
            return;
        await bus.manager("RemovePod", "s", [name]);
        cockpit.location.go([]);
    }

    const saveButton = button(editing ? "Save" : "Create", {
        action: "save",
        kind: "primary",
        onclick: event => busy(event.currentTarget, () => save(), errorSlot),
    });
    const cancel = link("Cancel", editing ? `#/pod/${encodeURIComponent(name)}` : "#/",
                        { class: "pm-button pm-button-link", dataset: { action: "cancel" } });
    const deleteButton = editing
        ? button("Delete", {
            action: "delete",
            kind: "danger",
            onclick: event => busy(event.currentTarget, remove, errorSlot),
        })
        : null;
    const actions = [saveButton, cancel, deleteButton];
    let loaded = !editing;
    let allowed = true; // until polkit says otherwise
    function updateButtons() {
        for (const control of [saveButton, deleteButton].filter(Boolean)) {
            control.disabled = !allowed || (control === saveButton && !loaded);
            control.title = allowed ? "" : "Needs administrative access";
        }
    }
    bus.mayAct(bus.MANAGE_PODS).then(result => {
        allowed = result;
        updateButtons();
    });
    // Ctrl+S saves, as in every editor (through the button: the same checks and state).
    widget.textarea.addEventListener("keydown", event => {
        if (event.key === "s" && (event.ctrlKey || event.metaKey) && !event.altKey) {
            event.preventDefault();
            if (!saveButton.disabled)
                saveButton.click();
        }
    });

    const title = editing ? `${name}.toml` : "Manifest of the new pod";
    const form = h("div", { class: "pm-editor-form" },
                   editing
                       ? null
                       : h("div", { class: "pm-form-group" },
                           h("label", { class: "pm-label", for: "pm-pod-name" }, "Name"),
                           nameInput, nameHelp),
                   h("div", { class: "pm-form-group" },
                     h("div", { class: "pm-editor-label-row" },
                       h("label", { class: "pm-label", for: "pm-manifest-text" }, "Manifest"),
                       status),
                     unplaced,
                     widget.element,
                     h("p", { class: "pm-help" }, "TOML, as podmgr.toml(5) describes; checked by the service as you type.")));
    const editorCard = card(title, {
        body: [form, errorSlot, h("div", { class: "pm-actions pm-editor-actions" }, actions)],
    });
    const body = h("div", { class: "pm-editor-view" }, notice, editorCard);
    main.append(breadcrumb(name), h("div", { class: "pm-page-header" },
                                    h("h1", { class: "pm-title" }, editing ? `Edit pod ${name}` : "Create a pod")),
                body);

    updateButtons();
    widget.value = "";
    if (editing) {
        widget.setDisabled(true);
        widget.textarea.placeholder = "";
        (async () => {
            try {
                [podPath] = await bus.manager("GetPod", "s", [name]);
                const pod = await bus.podProperties(podPath);
                if (stopped)
                    return;
                if (!pod.ManifestDigest) {
                    editorCard.hidden = true;
                    replace(notice, alert("warning", "This manifest is not readable for you",
                                          `${pod.ManifestPath} is kept private by its mode, and the ` +
                                          "service shows it only to whom may read it. Turn on " +
                                          "administrative access to edit it."));
                    return;
                }
                replace(editorCard.querySelector(".pm-card-title"), pod.ManifestPath);
                widget.setDisabled(false);
                loaded = true;
                updateButtons();
                load(pod);
                const stored = `/etc/podmgr/pods/${name}.toml`;
                if (pod.ManifestPath !== stored) {
                    // A runtime or vendor manifest: saving masks it, as for unit files.
                    replace(notice, alert("info", `Saving stores ${stored}`,
                                          `It then overrides ${pod.ManifestPath}, which stays as it is.`));
                }
                watchFile(pod);
            } catch (exception) {
                if (!stopped)
                    replace(notice, alert("danger", `Cannot open pod ${name}`, bus.toError(exception).message));
            }
        })();
    } else {
        setStatus("idle", "");
        nameInput.focus();
    }

    return () => {
        stopped = true;
        if (timer !== null)
            window.clearTimeout(timer);
        for (const cleanup of cleanups)
            cleanup();
    };
}
