// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Images: the store's images (ListImages), pulls and imports followed through their
// org.podmgr1.Transfer objects (Progress, Log, then the Manager's TransferRemoved with
// "done", "canceled" or "failed: REASON"), removal, garbage collection, and one image
// inspected (InspectImage's JSON shown as sections).  Routes: ["images"], ["images", NAME].
// Whether an image may be stored is the service's decision alone: a refusal is shown
// as the one line the service gives.

import * as bus from "./bus.js";
import {
    alert, busy, button, card, clear, confirm, descriptionList, emptyState, formatBytes, h,
    inlineError, link, replace, spinner, table,
} from "./dom.js";

const cockpit = window.cockpit;

function imageHref(name) {
    return `#/images/${encodeURIComponent(name)}`;
}

// "sha256:0123456789ab…": enough to tell images apart, the whole digest on hover.
function shortDigest(digest) {
    const [algorithm, hex] = digest.split(":");
    return h("span", { class: "pm-mono", title: digest }, hex ? `${algorithm}:${hex.slice(0, 12)}` : digest);
}

// Fingerprints as gpg prints them: groups of four hex digits.
export function groupedFingerprint(fingerprint) {
    return fingerprint.replace(/(.{4})(?=.)/g, "$1 ");
}

function shortFingerprint(fingerprint) {
    return h("span", { class: "pm-mono", title: groupedFingerprint(fingerprint) }, fingerprint.slice(-16));
}

function storedTime(iso) {
    const date = new Date(iso);
    return h("time", { datetime: iso, title: iso }, Number.isNaN(date.getTime()) ? iso : date.toLocaleString());
}

function signers(image) {
    if (image.insecure)
        return h("span", { class: "pm-badge pm-badge-warning" }, "Insecure (unsigned)");
    return h("ul", { class: "pm-plain-list" }, image.signedBy.map(fpr => h("li", null, shortFingerprint(fpr))));
}

async function listImages() {
    const [images] = await bus.manager("ListImages");
    return images
            .map(([name, digest, signed, insecure, size, stored]) => ({
                name, digest, insecure, size, stored, signedBy: signed ? signed.split(",") : [],
            }))
            .sort((a, b) => a.name.localeCompare(b.name));
}

const PROPERTIES = "org.freedesktop.DBus.Properties";
const TRANSFER_PATHS = "/org/podmgr1/transfer";
const WORDS = {
    pull: { running: "Pulling", done: "Pulled", failed: "Pull failed" },
    import: { running: "Importing", done: "Imported", failed: "Import failed" },
};

// One pull or import on the page: its progress bar, its Log lines, Cancel, and how it
// ended.  handle() takes the transfer's events; attach() its object path once known.
function transferPanel(kind, source, allowed) {
    const words = WORDS[kind];
    const progress = h("progress", { class: "pm-progress", max: "1", value: "0", "aria-label": "Progress" });
    const percent = h("span", { class: "pm-progress-text" }, "0 %");
    const log = h("ul", { class: "pm-plain-list pm-transfer-log pm-mono" });
    const result = h("div", { class: "pm-transfer-result" });
    const errorSlot = h("div");
    const progressRow = h("div", { class: "pm-progress-row" }, progress, percent);
    let path = null;
    let done = 0;
    const cancel = button("Cancel", {
        action: "cancel",
        small: true,
        disabled: true,
        onclick: () => busy(cancel, () => bus.call(path, bus.TRANSFER, "Cancel"), errorSlot),
    });
    const dismiss = button("Close", { action: "dismiss", kind: "plain", small: true, onclick: () => element.remove() });
    dismiss.hidden = true;
    const element = h("div", { class: "pm-transfer", dataset: { name: source, state: "running" } },
                      h("div", { class: "pm-transfer-header" },
                        h("span", { class: "pm-transfer-title" }, `${words.running} `, h("span", { class: "pm-mono" }, source)),
                        h("div", { class: "pm-actions" }, cancel, dismiss)),
                      progressRow,
                      log, errorSlot, result);

    function finish(state, alertKind, title, message) {
        element.dataset.state = state;
        cancel.hidden = true;
        progressRow.hidden = state !== "done"; // a bar stopped short says nothing more
        dismiss.hidden = false;
        replace(result, alert(alertKind, title, message));
    }

    function handle(event) {
        if (element.dataset.state !== "running")
            return;
        if (event.progress !== undefined && event.progress >= done) {
            done = event.progress;
            progress.value = done;
            percent.textContent = `${Math.floor(done * 100)} %`;
        } else if (event.log !== undefined) {
            log.appendChild(h("li", null, event.log));
        } else if (event.result === "done") {
            // What was stored, and who signed it, becomes the message: not a log line too.
            const stored = [...log.children].find(line => line.textContent !== "done");
            finish("done", "success", words.done, stored?.textContent);
            stored?.remove();
        } else if (event.result === "canceled") {
            finish("canceled", "info", "Canceled", "Nothing of it was kept.");
        } else if (event.result !== undefined) {
            finish("failed", "danger", words.failed, event.result.replace(/^failed: /, ""));
        }
        // The last Log line repeats the result, shown above once.
        if (event.result !== undefined) {
            for (const line of [...log.children])
                if (line.textContent === event.result)
                    line.remove();
        }
    }

    async function attach(transferPath) {
        path = transferPath;
        element.dataset.transfer = path;
        if (element.dataset.state === "running")
            cancel.disabled = !(await allowed);
    }

    return { element, handle, attach, fail: error => finish("failed", "danger", words.failed, error.message) };
}

// Follows the transfers this view starts.  The signals are subscribed to before a
// transfer starts: its Log, PropertiesChanged and TransferRemoved may all arrive
// before the method's reply names its object path, so they wait by path until then.
// Transfer paths are numbered anew each time the service starts: a path's panel stops
// listening once its result came.
function followTransfers(onStored) {
    const panels = new Map();
    const early = new Map();
    let pending = 0;

    function deliver(path, event) {
        const panel = panels.get(path);
        if (panel) {
            panel.handle(event);
            if (event.result !== undefined)
                panels.delete(path);
        } else if (pending > 0) {
            if (!early.has(path))
                early.set(path, []);
            early.get(path).push(event);
        }
    }

    const unsubscribe = [
        bus.subscribe({ interface: bus.TRANSFER, member: "Log", path_namespace: TRANSFER_PATHS },
                      (path, iface, member, [line]) => deliver(path, { log: line })),
        bus.subscribe({ interface: PROPERTIES, member: "PropertiesChanged", path_namespace: TRANSFER_PATHS },
                      (path, iface, member, [name, changed]) => {
                          if (name === bus.TRANSFER && changed.Progress)
                              deliver(path, { progress: changed.Progress.v });
                      }),
        bus.subscribe({ interface: bus.MANAGER, member: "TransferRemoved", path: bus.MANAGER_PATH },
                      (signalPath, iface, member, [id, path, result]) => {
                          deliver(path, { result });
                          if (result === "done")
                              onStored(); // by this page or anyone else
                      }),
    ];

    function start(kind, method, signature, args, source, allowed) {
        const panel = transferPanel(kind, source, allowed);
        pending++;
        bus.manager(method, signature, args)
                .then(([id, path]) => {
                    panels.set(path, panel);
                    panel.attach(path);
                    for (const event of early.get(path) || [])
                        deliver(path, event);
                    early.delete(path);
                    // The progress so far, unless it has ended already (its signals said so).
                    if (panels.has(path)) {
                        bus.properties(path, bus.TRANSFER)
                                .then(props => deliver(path, { progress: props.Progress }))
                                .catch(() => {});
                    }
                })
                .catch(error => panel.fail(bus.toError(error)))
                .finally(() => {
                    if (--pending === 0)
                        early.clear();
                });
        return panel.element;
    }

    return {
        start,
        stop: () => unsubscribe.forEach(remove => remove()),
    };
}

function needsRight(buttons, allowed) {
    for (const btn of buttons) {
        btn.disabled = !allowed;
        btn.title = allowed ? "" : "Needs administrative access";
    }
}

async function removeImage(name, errorSlot) {
    const confirmed = await confirm({
        title: `Remove ${name}?`,
        body: h("p", null, "The image's record is removed. Garbage-collect then frees the layers " +
                "that no other image and no running pod uses, once [gc] grace of podmgr.toml " +
                "(24 hours by default) has passed."),
        action: "remove",
        label: "Remove",
        danger: true,
    });
    if (!confirmed)
        return false;
    try {
        await bus.manager("RemoveImage", "s", [name]);
        return true;
    } catch (error) {
        inlineError(errorSlot, bus.toError(error));
        return false;
    }
}

// A dialog asking for the fields of a transfer; resolves to their values, or null.
async function askTransfer({ title, action, label, fields }) {
    const inputs = fields.map(({ id, placeholder }) =>
        h("input", { class: "pm-input", id, type: "text", placeholder, spellcheck: "false", autocomplete: "off" }));
    const body = h("div", { class: "pm-form" }, fields.map(({ id, label: name, help }, index) =>
        h("div", { class: "pm-form-group" },
          h("label", { for: id }, name),
          inputs[index],
          help ? h("p", { class: "pm-form-help" }, help) : null)));
    for (const input of inputs) {
        input.addEventListener("keydown", event => {
            if (event.key !== "Enter")
                return;
            // Not passed on: focus returns to the button that opened the dialog, which
            // the same Enter would press again.
            event.preventDefault();
            input.closest("dialog")?.querySelector(`footer [data-action="${action}"]`)?.click();
        });
    }
    window.setTimeout(() => inputs[0].focus(), 0);
    const confirmed = await confirm({ title, body, action, label });
    return confirmed ? inputs.map(input => input.value.trim()) : null;
}

function gcResult(slot, [layers, blobs, repaired]) {
    const freed = `Freed ${layers} ${layers === 1 ? "layer" : "layers"} and ${blobs} ` +
        `${blobs === 1 ? "blob" : "blobs"} that no image and no prepared pod uses.`;
    replace(slot, h("div", { dataset: { result: "gc" } },
                    alert("success", "Garbage collected",
                          [freed, repaired.length === 0
                              ? " Nothing was left by pods that are gone."
                              : h("ul", { class: "pm-plain-list pm-repaired" },
                                  repaired.map(what => h("li", null, `Removed ${what}, left by a pod that is gone`)))])));
}

function listView(main) {
    const errors = h("div", { class: "pm-errors" });
    const transfers = h("div", { class: "pm-transfers" });
    const gcSlot = h("div", { class: "pm-gc-result" });
    const body = h("div", { class: "pm-images" }, spinner("Loading images"));
    const allowed = bus.mayAct(bus.MANAGE_IMAGES);
    let reading = 0;

    async function refresh() {
        const mine = ++reading;
        try {
            const images = await listImages();
            const may = await allowed;
            if (mine !== reading)
                return;
            replace(body, images.length === 0
                ? emptyState("No images",
                             [h("p", null, "Pull an image from a registry, or import an archive or layout ",
                                "that is on this server. Only images with a trusted signature are stored, ",
                                "unless podmgr.toml lets a name be stored unsigned.")])
                : table({
                    columns: ["Name", "Digest", "Size", "Signed by", "Stored", { title: "", class: "pm-table-actions" }],
                    rows: images,
                    key: image => image.name,
                    cells: image => {
                        const remove = button("Remove", {
                            action: "remove",
                            kind: "secondary",
                            small: true,
                            onclick: () => busy(remove, async () => {
                                if (await removeImage(image.name, errors))
                                    await refresh();
                            }),
                        });
                        needsRight([remove], may);
                        return [
                            link(image.name, imageHref(image.name), { class: "pm-image-name" }),
                            shortDigest(image.digest),
                            formatBytes(image.size),
                            signers(image),
                            storedTime(image.stored),
                            h("div", { class: "pm-actions" },
                              button("Inspect", {
                                  action: "inspect",
                                  kind: "link",
                                  small: true,
                                  onclick: () => cockpit.location.go(["images", image.name]),
                              }),
                              remove),
                        ];
                    },
                }));
            body.dataset.loaded = String(mine);
        } catch (error) {
            if (mine === reading)
                replace(body, alert("danger", "Cannot list the images", bus.toError(error).message));
        }
    }

    const follow = followTransfers(refresh);

    function start(kind, method, signature, args, source) {
        inlineError(errors, null);
        transfers.prepend(follow.start(kind, method, signature, args, source, allowed));
    }

    const pull = button("Pull image", {
        action: "pull",
        kind: "primary",
        onclick: async () => {
            const values = await askTransfer({
                title: "Pull image",
                action: "pull",
                label: "Pull",
                fields: [{
                    id: "pm-pull-reference",
                    label: "Image",
                    placeholder: "registry.example.org/shop/api:1.4",
                    help: "Fetched from its registry (docker://); stored only when a trusted key " +
                        "signed it, or when podmgr.toml lets this name be stored unsigned.",
                }],
            });
            if (values)
                start("pull", "PullImage", "s", values, values[0]);
        },
    });
    const importButton = button("Import", {
        action: "import",
        onclick: async () => {
            const values = await askTransfer({
                title: "Import image",
                action: "import",
                label: "Import",
                fields: [
                    {
                        id: "pm-import-source",
                        label: "Source on the server",
                        placeholder: "oci-archive:/srv/images/api.tar",
                        help: "oci-archive:FILE[:REF], docker-archive:FILE[:NAME:TAG|:@N], " +
                            "oci:DIR[:REF|:@N] or dir:DIR, with an absolute path.",
                    },
                    {
                        id: "pm-import-name",
                        label: "Name (optional)",
                        placeholder: "registry.example.org/shop/api:1.4",
                        help: "Stored under this name; empty: the archive's own name, or the " +
                            "one its signature names.",
                    },
                ],
            });
            if (values)
                start("import", "ImportImage", "ss", values, values[0]);
        },
    });
    const gc = button("Garbage-collect", {
        action: "gc",
        onclick: () => busy(gc, async () => {
            clear(gcSlot);
            gcResult(gcSlot, await bus.manager("GarbageCollect"));
        }, gcSlot),
    });
    // Disabled until polkit's answer is known, so that nothing is pressed in vain.
    needsRight([pull, importButton, gc], false);
    allowed.then(yes => needsRight([pull, importButton, gc], yes));

    main.appendChild(h("div", { class: "pm-stack" },
                       card("Images", { id: "images", actions: [pull, importButton, gc], body: [errors, transfers, gcSlot, body] })));
    refresh();
    return follow.stop;
}

// An argv as a person reads it: words that need no quoting stay bare.
function argv(words) {
    if (!words || words.length === 0)
        return h("span", { class: "pm-muted" }, "none");
    return h("span", { class: "pm-mono" },
             words.map(word => /^[\w@%+=:,./-]+$/.test(word) ? word : JSON.stringify(word)).join(" "));
}

function orNone(value) {
    return value ? value : h("span", { class: "pm-muted" }, "not set");
}

function signatureSection(image) {
    if (image.signers.length === 0) {
        return h("p", { class: "pm-signatures-none" },
                 h("span", { class: "pm-badge pm-badge-warning" }, "Insecure (unsigned)"),
                 " Stored without a trusted signature, as podmgr.toml allows for this name.");
    }
    return table({
        columns: ["Signed by", "Trusted for"],
        rows: image.signers,
        key: signer => signer.fingerprint,
        cells: signer => [
            h("span", { class: "pm-mono" }, groupedFingerprint(signer.fingerprint)),
            signer.trusted_as.length
                ? h("ul", { class: "pm-plain-list" }, signer.trusted_as.map(scope => h("li", null, scope)))
                : h("span", { class: "pm-badge pm-badge-warning" }, "No longer trusted"),
        ],
    });
}

function inspectSections(image) {
    const config = image.config;
    return [
        card("Image", {
            id: "image-overview",
            body: descriptionList([
                ["ID", h("span", { class: "pm-mono" }, image.id)],
                ["Manifest", h("span", { class: "pm-mono" }, image.manifest)],
                ["Source", h("span", { class: "pm-mono" }, image.source)],
                ["Identity", orNone(image.identity)],
                ["Size", formatBytes(image.size)],
                ["Stored", storedTime(image.stored)],
            ]),
        }),
        card("Signatures", { id: "image-signatures", body: signatureSection(image) }),
        card("Config", {
            id: "image-config",
            body: descriptionList([
                ["Platform", config.platform],
                ["Entrypoint", argv(config.entrypoint)],
                ["Command", argv(config.cmd)],
                ["User", orNone(config.user)],
                ["Working directory", orNone(config.working_dir)],
                ["Environment", config.env.length
                    ? h("ul", { class: "pm-plain-list pm-mono" }, config.env.map(entry => h("li", null, entry)))
                    : h("span", { class: "pm-muted" }, "none")],
            ]),
        }),
        card("Layers", {
            id: "image-layers",
            body: table({
                columns: ["#", "Digest", "Media type", "Size", "Unpacked as (diff ID)"],
                rows: image.layers.map((layer, index) => ({ ...layer, index })),
                key: layer => layer.digest,
                cells: layer => [
                    String(layer.index + 1),
                    shortDigest(layer.digest),
                    h("span", { class: "pm-mono" }, layer.media_type),
                    formatBytes(layer.size),
                    shortDigest(layer.diff_id),
                ],
            }),
        }),
    ];
}

function inspectView(main, name) {
    const errors = h("div", { class: "pm-errors" });
    const body = h("div", { class: "pm-stack" }, spinner("Loading the image"));
    const remove = button("Remove", {
        action: "remove",
        kind: "danger",
        onclick: () => busy(remove, async () => {
            if (await removeImage(name, errors))
                cockpit.location.go(["images"]);
        }),
    });
    needsRight([remove], false);
    bus.mayAct(bus.MANAGE_IMAGES).then(yes => needsRight([remove], yes));
    main.appendChild(h("div", { class: "pm-stack pm-image", dataset: { name } },
                       h("nav", { class: "pm-breadcrumb", "aria-label": "Breadcrumb" },
                         link("Images", "#/images"), h("span", null, name)),
                       h("div", { class: "pm-page-header" },
                         h("h1", { class: "pm-title" }, name),
                         h("div", { class: "pm-actions" }, remove)),
                       errors,
                       body));
    bus.manager("InspectImage", "s", [name])
            .then(([json]) => {
                replace(body, inspectSections(JSON.parse(json)));
                body.dataset.loaded = "true";
            })
            .catch(error => {
                const problem = bus.toError(error);
                replace(body, problem.name === "org.podmgr1.Error.NoSuchImage"
                    ? emptyState("No such image", problem.message, link("Back to the images", "#/images"))
                    : alert("danger", `Cannot inspect ${name}`, problem.message));
            });
}

export function show(main, path) {
    if (path.length === 2)
        return inspectView(main, path[1]);
    return listView(main);
}
