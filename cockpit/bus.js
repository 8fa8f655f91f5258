// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The one module that talks to org.podmgr1 (and to systemd and polkit for what the page
// shows beside it), through Cockpit's base1 cockpit.dbus.  The page repeats no logic of
// the service: it calls methods, reads properties and shows the service's one-line
// messages as they are.
//
// Calls go over the system bus with superuser "try": with Cockpit's administrative access
// switched on they are made by the privileged bridge (root, which polkit allows), without
// it by the user's own bridge, so polkit decides for that user (a member of the group the
// shipped rule names may act; anyone else gets AccessDenied).  Cockpit reloads the page
// when administrative access changes, so each load asks once.
//
// API (every view builds on it; extend it, do not change it):
//
//   BUS_NAME, MANAGER_PATH, MANAGER, POD, TRANSFER: names of the org.podmgr1 API
//   MANAGE_PODS, MANAGE_IMAGES, MANAGE_TRUST: its polkit actions
//   client() -> the shared cockpit.dbus client for org.podmgr1
//   call(path, iface, method, signature, args) -> Promise<out args array>;
//       rejects with a BusError
//   manager(method, signature = "", args = []) -> Promise<out args array>: a Manager call
//   properties(path, iface) -> Promise<{Name: plain value}> (GetAll, variants unwrapped)
//   listPods() -> Promise<[{name, state, path}]>
//   podProperties(path) -> Promise<{Name, State, Apps, ...}> of one org.podmgr1.Pod
//   BusError: Error with .name (the D-Bus error name, e.g. org.podmgr1.Error.NoSuchPod,
//       org.freedesktop.DBus.Error.AccessDenied, or "cockpit.PROBLEM" for a failed
//       channel) and .message (the service's one line)
//   toError(exception) -> BusError
//   isAccessDenied(error) -> boolean
//   subscribe(match, callback) -> unsubscribe(): signals of org.podmgr1;
//       match: {interface, member, path, path_namespace}; callback(path, iface, member, args)
//   watchPods(callback) -> stop(): callback() (debounced) whenever the pods may have
//       changed: PodNew, PodRemoved, PropertiesChanged of a Pod, systemd's signals for
//       pod@*/podapp@* units and its reloads, and changes in the manifest directories
//       (fswatch1).  Never polls.  The callback re-reads through org.podmgr1.
//   serialized(fn) -> run(): calls of run() never overlap; one made while fn runs makes
//       fn run once more afterwards (for re-reads triggered by signals)
//   installed() -> Promise<boolean>: whether org.podmgr1 is running or activatable
//   systemd() -> the shared cockpit.dbus client for org.freedesktop.systemd1
//   unitProperties(unit) -> Promise<{ActiveState, SubState, NRestarts, MemoryCurrent,
//       CPUUsageNSec, ...} | null> (Unit and Service properties; unset numbers are null;
//       null when systemd has not loaded the unit: inactive and nothing refers to it)
//   superuser() -> Promise<boolean>: whether Cockpit's administrative access is on
//   mayAct(action) -> Promise<boolean>: whether calls needing polkit ACTION would be
//       allowed without authentication for this page (its bridge process)
//   MANIFEST_DIRS: the directories watched for manifests

export const BUS_NAME = "org.podmgr1";
export const MANAGER_PATH = "/org/podmgr1";
export const MANAGER = "org.podmgr1.Manager";
export const POD = "org.podmgr1.Pod";
export const TRANSFER = "org.podmgr1.Transfer";
export const MANAGE_PODS = "org.podmgr1.manage-pods";
export const MANAGE_IMAGES = "org.podmgr1.manage-images";
export const MANAGE_TRUST = "org.podmgr1.manage-trust";
export const MANIFEST_DIRS = ["/etc/podmgr/pods", "/run/podmgr/pods", "/usr/lib/podmgr/pods"];

const SYSTEMD = "org.freedesktop.systemd1";
const SYSTEMD_PATH = "/org/freedesktop/systemd1";
const UNIT_PATHS = "/org/freedesktop/systemd1/unit";
const PROPERTIES = "org.freedesktop.DBus.Properties";
const DEBOUNCE_MS = 150;
// systemd's "unset" for 64-bit counters (UINT64_MAX) does not survive JSON as an integer
const UNSET = 2 ** 63;

export class BusError extends Error {
    constructor(name, message) {
        super(message);
        this.name = name;
    }
}

export function toError(exception) {
    if (exception instanceof BusError)
        return exception;
    if (exception && typeof exception === "object") {
        if (exception.name && exception.name.includes(".") && exception.message !== undefined)
            return new BusError(exception.name, String(exception.message));
        if (exception.problem)
            return new BusError(`cockpit.${exception.problem}`, window.cockpit.message(exception));
    }
    return new BusError("cockpit.error", String(exception?.message ?? exception));
}

export function isAccessDenied(error) {
    return error?.name === "org.freedesktop.DBus.Error.AccessDenied" ||
        error?.name === "org.podmgr1.Error.AccessDenied" ||
        error?.name === "cockpit.access-denied";
}

let podmgrClient = null;
let systemdClient = null;

export function client() {
    if (!podmgrClient)
        podmgrClient = window.cockpit.dbus(BUS_NAME, { bus: "system", superuser: "try" });
    return podmgrClient;
}

export function systemd() {
    if (!systemdClient)
        systemdClient = window.cockpit.dbus(SYSTEMD, { bus: "system", superuser: "try" });
    return systemdClient;
}

async function callOn(dbus, path, iface, method, signature, args) {
    try {
        return await dbus.call(path, iface, method, args, signature ? { type: signature } : {});
    } catch (exception) {
        throw toError(exception);
    }
}

export function call(path, iface, method, signature = "", args = []) {
    return callOn(client(), path, iface, method, signature, args);
}

export function manager(method, signature = "", args = []) {
    return call(MANAGER_PATH, MANAGER, method, signature, args);
}

function unwrap(variants) {
    const plain = {};
    for (const [name, variant] of Object.entries(variants))
        plain[name] = variant && typeof variant === "object" && "v" in variant ? variant.v : variant;
    return plain;
}

export async function properties(path, iface) {
    const [variants] = await call(path, PROPERTIES, "GetAll", "s", [iface]);
    return unwrap(variants);
}

export async function listPods() {
    const [pods] = await manager("ListPods");
    return pods.map(([name, state, path]) => ({ name, state, path }));
}

export function podProperties(path) {
    return properties(path, POD);
}

export function subscribe(match, callback) {
    const subscription = client().subscribe(match, callback);
    return () => subscription.remove();
}

// Unit object paths escape every byte outside [A-Za-z0-9] as _XX (sd_bus_path_encode).
function isPodUnitPath(path) {
    const unit = path.slice(UNIT_PATHS.length + 1);
    return unit.startsWith("pod_40") || unit.startsWith("podapp_40");
}

export function watchPods(callback) {
    let timer = null;
    let stopped = false;
    const unitStates = new Map(); // unit object path -> ActiveState last signalled
    const changed = () => {
        if (stopped || timer !== null)
            return;
        timer = window.setTimeout(() => {
            timer = null;
            if (!stopped)
                callback();
        }, DEBOUNCE_MS);
    };
    const subscriptions = [
        client().subscribe({ interface: MANAGER, path: MANAGER_PATH, member: "PodNew" }, changed),
        client().subscribe({ interface: MANAGER, path: MANAGER_PATH, member: "PodRemoved" }, changed),
        client().subscribe({ interface: PROPERTIES, path_namespace: "/org/podmgr1/pod", member: "PropertiesChanged" },
                           changed),
        // The service exits when idle: systemd's own signals tell of pods started and
        // stopped by anyone meanwhile, and of reloads after a manifest changed.  Only a
        // change of a unit's ActiveState counts: reading a unit's properties loads it,
        // and systemd then sends its properties (ActiveState "inactive" too), so a unit
        // first seen inactive is no news, or each re-read would trigger the next.
        systemd().subscribe({ interface: PROPERTIES, path_namespace: UNIT_PATHS, member: "PropertiesChanged" },
                            (path, iface, member, [changedIface, props]) => {
                                if (!isPodUnitPath(path) || changedIface !== `${SYSTEMD}.Unit` ||
                                    !props?.ActiveState)
                                    return;
                                const state = props.ActiveState.v;
                                const before = unitStates.get(path) ?? "inactive";
                                unitStates.set(path, state);
                                if (state !== before)
                                    changed();
                            }),
        systemd().subscribe({ interface: `${SYSTEMD}.Manager`, member: "Reloading" },
                            (path, iface, member, [starting]) => { if (!starting) changed() }),
    ];
    // systemd sends unit signals only while some client asked for them.
    callOn(systemd(), SYSTEMD_PATH, `${SYSTEMD}.Manager`, "Subscribe", "", []).catch(() => {});
    const watches = MANIFEST_DIRS.map(path => {
        const channel = window.cockpit.channel({ payload: "fswatch1", path, superuser: "try" });
        channel.addEventListener("message", changed);
        return channel;
    });
    return () => {
        stopped = true;
        if (timer !== null)
            window.clearTimeout(timer);
        for (const subscription of subscriptions)
            subscription.remove();
        for (const channel of watches)
            channel.close();
    };
}

// fn, run so that calls never overlap: a call while it runs makes it run once more
// afterwards (however many calls came meanwhile), so the last state is always read and
// a stream of signals cannot starve it.
export function serialized(fn) {
    let running = null;
    let again = false;
    const run = async () => {
        if (running) {
            again = true;
            return running;
        }
        running = (async () => {
            do {
                again = false;
                try {
                    await fn();
                } catch (error) {
                    console.warn(error);
                }
            } while (again);
        })();
        try {
            await running;
        } finally {
            running = null;
        }
    };
    return run;
}

export async function installed() {
    const bus = window.cockpit.dbus("org.freedesktop.DBus", { bus: "system" });
    try {
        const [activatable] = await callOn(bus, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                           "ListActivatableNames", "", []);
        if (activatable.includes(BUS_NAME))
            return true;
        const [owned] = await callOn(bus, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                     "NameHasOwner", "s", [BUS_NAME]);
        return owned;
    } finally {
        bus.close();
    }
}

function unsetToNull(value) {
    return typeof value === "number" && value >= UNSET ? null : value;
}

export async function unitProperties(unit) {
    // GetUnit, not LoadUnit: loading an unloaded unit makes systemd announce it, and
    // org.podmgr1 passes that on as a change of the pod, which would re-read it again.
    let path;
    try {
        [path] = await callOn(systemd(), SYSTEMD_PATH, `${SYSTEMD}.Manager`, "GetUnit", "s", [unit]);
    } catch (error) {
        if (error.name === "org.freedesktop.systemd1.NoSuchUnit")
            return null;
        throw error;
    }
    const props = {};
    for (const iface of [`${SYSTEMD}.Unit`, `${SYSTEMD}.Service`]) {
        const [variants] = await callOn(systemd(), path, PROPERTIES, "GetAll", "s", [iface]);
        Object.assign(props, unwrap(variants));
    }
    for (const name of ["NRestarts", "MemoryCurrent", "CPUUsageNSec"])
        props[name] = unsetToNull(props[name]);
    return props;
}

let superuserState = null;
let permission = null;

// cockpit.permission also reloads the page when the access changes (Cockpit's pages
// are built for what the user may do once, at load); it stays alive for that.
export function superuser() {
    if (!superuserState) {
        superuserState = new Promise(resolve => {
            permission = window.cockpit.permission({ admin: true });
            const known = () => {
                if (permission.allowed !== null)
                    resolve(Boolean(permission.allowed));
            };
            permission.addEventListener("changed", known);
            known();
        });
    }
    return superuserState;
}

const decisions = new Map();

// polkit decides, for the process that makes this page's calls (the bridge that
// cockpit.spawn with the same superuser option runs under), without interaction.
async function askPolkit(action) {
    const out = await window.cockpit.spawn(["/bin/sh", "-c", "echo $PPID"], { superuser: "try" });
    const pid = Number.parseInt(out, 10);
    const polkit = window.cockpit.dbus("org.freedesktop.PolicyKit1", { bus: "system", superuser: "try" });
    try {
        const subject = ["unix-process", { pid: { t: "u", v: pid }, "start-time": { t: "t", v: 0 } }];
        const [[authorized]] = await callOn(polkit, "/org/freedesktop/PolicyKit1/Authority",
                                            "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization",
                                            "(sa{sv})sa{ss}us", [subject, action, {}, 0, ""]);
        return authorized;
    } finally {
        polkit.close();
    }
}

export function mayAct(action) {
    if (!decisions.has(action)) {
        decisions.set(action, superuser()
                .then(admin => admin || askPolkit(action))
                .catch(() => false));
    }
    return decisions.get(action);
}
