// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Trusted keys: the keys that may sign images, by image name prefix (ListTrustedKeys),
// trusting a pasted or uploaded ASCII-armored key (TrustKey) once the administrator has
// seen its fingerprint, and distrusting one (UntrustKeyForPrefix, or UntrustKey for every
// prefix).  Route: ["trust"].

import * as bus from "./bus.js";
import { alert, busy, button, card, confirm, descriptionList, emptyState, h, inlineError, replace, spinner, table } from "./dom.js";
import { groupedFingerprint } from "./images.js";

const cockpit = window.cockpit;

// gpg's colon listings escape characters of a user ID as \xHH (":" among them).
function unescapeColons(field) {
    return field.replace(/\\x([0-9a-fA-F]{2})/g, (match, hex) => String.fromCharCode(parseInt(hex, 16)));
}

const VALIDITY = { e: "expired", r: "revoked" };

// Each key of `gpg --with-colons --import-options show-only --import`: its primary
// fingerprint (the first fpr record after its pub), user IDs, expiry and whether it is
// expired or revoked.  Later fpr records are those of its subkeys.
export function parseColons(listing) {
    const keys = [];
    let key = null;
    for (const line of listing.split("\n")) {
        const fields = line.split(":");
        if (fields[0] === "pub") {
            key = { fingerprint: "", userIds: [], state: VALIDITY[fields[1]] || "", expires: fields[6] };
            keys.push(key);
        } else if (key && fields[0] === "fpr" && !key.fingerprint) {
            key.fingerprint = fields[9];
        } else if (key && fields[0] === "uid") {
            key.userIds.push(unescapeColons(fields[9]));
        }
    }
    return keys;
}

// What the key says about itself, before anything is trusted.  gpg only reads here:
// show-only imports nothing, and its home is a directory made for this one run (gpg
// still writes an empty keybox and trustdb there), never the user's ~/.gnupg.  It runs
// as the logged-in user, not as root: the key is untrusted input.  The service reads the
// key again, in its own sandbox, when TrustKey is called, and refuses what it must.
async function readKey(armored) {
    const home = (await cockpit.spawn(["mktemp", "-d", "-t", "podmgr-key.XXXXXXXX"], { err: "message" })).trim();
    try {
        const listing = await cockpit.spawn(
            ["gpg", "--batch", "--quiet", "--no-autostart", "--homedir", home, "--with-colons",
                "--import-options", "show-only", "--import"],
            { err: "message" }).input(armored);
        return parseColons(listing);
    } catch (error) {
        throw new Error(`This is not an OpenPGP public key gpg can read: ${error.message || error}`);
    } finally {
        cockpit.spawn(["rm", "-rf", "--", home], { err: "ignore" }).catch(() => {});
    }
}

function scopeText(prefix) {
    return prefix ? prefix : "every image";
}

function keyDescription(key) {
    const expires = Number(key.expires);
    return descriptionList([
        ["Fingerprint", h("span", { class: "pm-mono pm-fingerprint", dataset: { fingerprint: key.fingerprint } },
                          groupedFingerprint(key.fingerprint))],
        ["User IDs", key.userIds.length
            ? h("ul", { class: "pm-plain-list" }, key.userIds.map(uid => h("li", null, uid)))
            : h("span", { class: "pm-muted" }, "none")],
        ["Expires", expires ? new Date(expires * 1000).toLocaleString() : "never"],
        key.state ? ["State", h("span", { class: "pm-badge pm-badge-danger" }, key.state)] : null,
    ]);
}

function keysTable(keys, onUntrust, allowed) {
    return table({
        columns: ["Fingerprint", "Trusted to sign", "Trusted by", { title: "", class: "pm-table-actions" }],
        rows: keys,
        key: ([fingerprint]) => fingerprint,
        rowAttrs: ([, prefix, origin]) => ({ dataset: { prefix, origin } }),
        cells: ([fingerprint, prefix, origin]) => {
            const untrust = button("Remove", {
                action: "untrust",
                small: true,
                disabled: !allowed,
                title: allowed ? null : "Needs administrative access",
            });
            untrust.addEventListener("click", () => onUntrust(untrust, fingerprint, prefix));
            return [
                h("span", { class: "pm-mono" }, groupedFingerprint(fingerprint)),
                prefix ? h("span", { class: "pm-mono" }, prefix) : h("span", { class: "pm-badge" }, "every image"),
                // A vendor key is masked, not deleted, when removed (UntrustKey's doc).
                origin === "vendor" ? "the vendor (/usr/lib/podmgr/trustedkeys)" : "this host's administrator",
                untrust,
            ];
        },
    });
}

function addKeyForm(onTrusted, allowed) {
    const errors = h("div");
    const prefix = h("input", {
        class: "pm-input", id: "pm-trust-prefix", type: "text", spellcheck: "false",
        placeholder: "registry.example.org/shop",
    });
    const onPrefix = h("input", { type: "radio", name: "pm-trust-scope", id: "pm-trust-scope-prefix", value: "prefix", checked: true });
    const onEvery = h("input", { type: "radio", name: "pm-trust-scope", id: "pm-trust-scope-root", value: "root" });
    const armored = h("textarea", {
        class: "pm-textarea pm-mono", id: "pm-trust-key", rows: "8", spellcheck: "false",
        placeholder: "-----BEGIN PGP PUBLIC KEY BLOCK-----",
    });
    // An uploaded file is read here in the browser and shown in the text field: what is
    // trusted is what the administrator sees.
    const upload = h("input", { type: "file", id: "pm-trust-file", accept: ".asc,.pub,.key,application/pgp-keys,text/plain" });
    upload.addEventListener("change", async () => {
        const [file] = upload.files;
        if (!file)
            return;
        armored.value = await file.text();
        armored.dispatchEvent(new Event("input"));
    });
    const trust = button("Trust key…", { action: "trust", kind: "primary" });

    function update() {
        prefix.disabled = !onPrefix.checked;
        const scopeGiven = onEvery.checked || prefix.value.trim() !== "";
        trust.disabled = !allowed || !scopeGiven || armored.value.trim() === "";
        trust.title = allowed ? "" : "Needs administrative access";
    }
    for (const input of [prefix, onPrefix, onEvery, armored])
        input.addEventListener("input", update);
    for (const input of [onPrefix, onEvery])
        input.addEventListener("change", update);
    update();

    trust.addEventListener("click", () => busy(trust, async () => {
        const text = armored.value;
        const scope = onEvery.checked ? "" : prefix.value.trim();
        const keys = await readKey(text);
        if (keys.length === 0)
            throw new Error("gpg found no public key in this text (export one with gpg --armor --export FINGERPRINT)");
        const confirmed = await confirm({
            title: "Trust this key?",
            body: h("div", { class: "pm-stack" },
                    keys.map(keyDescription),
                    h("p", null, "It will be trusted to sign ",
                      scope ? ["images under ", h("strong", { class: "pm-mono" }, scope)] : h("strong", null, "every image"),
                      ". Compare the fingerprint with the one its owner published before you trust it.")),
            action: "trust",
            label: "Trust",
        });
        if (!confirmed)
            return;
        const bytes = new TextEncoder().encode(text);
        const [fingerprint] = await bus.manager("TrustKey", "say", [scope, cockpit.base64_encode(bytes)]);
        armored.value = "";
        upload.value = "";
        update();
        onTrusted(fingerprint);
    }, errors));

    return h("div", { class: "pm-form", id: "trust-add" },
             h("fieldset", { class: "pm-form-group" },
               h("legend", null, "Images it may sign"),
               h("div", { class: "pm-radio" }, onPrefix,
                 h("label", { for: "pm-trust-scope-prefix" }, "Names under the prefix"), prefix),
               h("div", { class: "pm-radio" }, onEvery,
                 h("label", { for: "pm-trust-scope-root" }, "Every image"))),
             h("div", { class: "pm-form-group" },
               h("label", { for: "pm-trust-key" }, "ASCII-armored public key"),
               armored,
               h("div", { class: "pm-form-help" }, h("label", { for: "pm-trust-file" }, "Or read it from a file: "), upload)),
             errors,
             h("div", { class: "pm-actions" }, trust));
}

export function show(main) {
    const notice = h("div");
    const body = h("div", { class: "pm-keys" }, spinner("Loading trusted keys"));
    const form = h("div", null, spinner("Loading"));
    const allowed = bus.mayAct(bus.MANAGE_TRUST);
    let reading = 0;

    async function untrust(btn, fingerprint, prefix) {
        const everywhere = h("input", { type: "checkbox", id: "pm-untrust-every" });
        const confirmed = await confirm({
            title: "Remove this trusted key?",
            body: h("div", { class: "pm-stack" },
                    h("p", null, "Images signed only by ", h("span", { class: "pm-mono" }, groupedFingerprint(fingerprint)),
                      ` will no longer be pulled or imported under ${scopeText(prefix)}. A key the vendor ` +
                      "ships is masked, not deleted."),
                    h("div", { class: "pm-checkbox" }, everywhere,
                      h("label", { for: "pm-untrust-every" }, "For every prefix it is trusted for"))),
            action: "untrust",
            label: "Remove",
            danger: true,
        });
        if (!confirmed)
            return;
        await busy(btn, async () => {
            if (everywhere.checked)
                await bus.manager("UntrustKey", "s", [fingerprint]);
            else
                await bus.manager("UntrustKeyForPrefix", "ss", [prefix, fingerprint]);
            replace(notice, alert("success", "Key removed",
                                  `${groupedFingerprint(fingerprint)} is no longer trusted for ` +
                                  `${everywhere.checked ? "any image" : scopeText(prefix)}.`));
            await refresh();
        }, notice);
    }

    async function refresh() {
        const mine = ++reading;
        try {
            const [keys] = await bus.manager("ListTrustedKeys");
            const may = await allowed;
            if (mine !== reading)
                return;
            keys.sort(([fa, pa], [fb, pb]) => pa.localeCompare(pb) || fa.localeCompare(fb));
            replace(body, keys.length === 0
                ? emptyState("No trusted keys",
                             h("p", null, "No image can be pulled or imported until a key is trusted to sign it ",
                               "(or podmgr.toml lets its name be stored unsigned)."))
                : keysTable(keys, untrust, may));
            body.dataset.loaded = String(mine);
        } catch (error) {
            if (mine === reading)
                replace(body, alert("danger", "Cannot list the trusted keys", bus.toError(error).message));
        }
    }

    // The fingerprint is the one the service stored; the prefix is as it stored it (a
    // short name is on docker.io), which the list shows.
    allowed.then(may => replace(form, addKeyForm(fingerprint => {
        replace(notice, alert("success", "Key trusted",
                              `${groupedFingerprint(fingerprint)} is trusted; the list says for which images.`));
        refresh();
    }, may)));

    main.appendChild(h("div", { class: "pm-stack" },
                       notice,
                       card("Trusted keys", { id: "trusted-keys", body }),
                       card("Trust a key", { id: "trust-key", body: form })));
    refresh();
}
