// SPDX-License-Identifier: LGPL-2.1-or-later
//
// A console for each app of a pod: `podmgr enter POD --app APP` run by Cockpit's bridge
// in a pseudo-terminal (cockpit.channel, payload "stream", pty).  The command line is the
// client of org.podmgr1's EnterApp here too, so polkit judges the console as it judges
// the command line, and the command runs with the app's own confinement.
//
// A plain console, not a terminal emulator (cockpit/README says why): the output is text
// in a <pre>, with carriage return, backspace and tab followed and every other control
// sequence (CSI, OSC, two-character escapes) dropped; input is a line at a time, sent
// with a carriage return as a terminal's Enter is, and ^C and ^D have buttons.  Programs
// that draw the whole screen (vi, top) need a terminal emulator.
//
// API:
//   appConsole(pod) -> { element, update(apps, allowed), close() }
//       apps: the pod's app names, the first the default; allowed: whether polkit lets
//       this user manage pods (the console is disabled otherwise, and says why).

import { button, h, replace } from "./dom.js";

const cockpit = window.cockpit;

const ROWS = 24;
const COLUMNS = 100;
const KEPT_LINES = 2000; // older lines drop off the top

// Escape sequences: CSI (ESC [ ... final byte), OSC (ESC ] ... BEL or ESC \), and the
// two-character ones.  An unfinished one at the end of a chunk waits for the next.
const ESCAPE = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\^_`a-z{|}~=>()*+#%78])/g;
const UNFINISHED = /\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[()*+#%]?)$/;

// What a terminal shows of a stream: lines, and the line the cursor is on.
export class Screen {
    constructor() {
        this.lines = [];
        this.line = [];
        this.column = 0;
        this.pending = "";
    }

    feed(data) {
        let text = this.pending + data;
        const unfinished = text.match(UNFINISHED);
        this.pending = unfinished ? unfinished[0] : "";
        if (unfinished)
            text = text.slice(0, unfinished.index);
        for (const char of text.replace(ESCAPE, "")) {
            if (char === "\n") {
                this.lines.push(this.line.join(""));
                this.line = [];
                this.column = 0;
            } else if (char === "\r") {
                this.column = 0;
            } else if (char === "\b") {
                this.column = Math.max(0, this.column - 1);
            } else if (char === "\t") {
                this.column = Math.min(COLUMNS - 1, (Math.floor(this.column / 8) + 1) * 8);
                while (this.line.length < this.column)
                    this.line.push(" ");
            } else if (char >= " " && char !== "\x7f") {
                while (this.line.length < this.column)
                    this.line.push(" ");
                this.line[this.column++] = char;
            }
        }
        if (this.lines.length > KEPT_LINES)
            this.lines.splice(0, this.lines.length - KEPT_LINES);
    }

    text() {
        return [...this.lines, this.line.join("")].join("\n");
    }
}

export function appConsole(pod) {
    const appSelect = h("select", { class: "pm-select", id: "console-app", "aria-label": "App" });
    const output = h("pre", { class: "pm-console-output", id: "console-output", role: "log" });
    const input = h("input", {
        class: "pm-console-input", id: "console-input", type: "text", autocomplete: "off",
        spellcheck: "false", "aria-label": "Input", disabled: true,
    });
    const status = h("p", { class: "pm-console-status pm-muted", id: "console-status", "aria-live": "polite" });
    let channel = null;
    let screen = new Screen();
    let allowed = false;

    function show() {
        output.textContent = screen.text();
        output.scrollTop = output.scrollHeight;
    }

    function send(data) {
        if (channel)
            channel.send(data);
    }

    function connected(open) {
        connect.disabled = open || !allowed || !appSelect.value;
        disconnect.disabled = !open;
        interrupt.disabled = !open;
        endOfInput.disabled = !open;
        input.disabled = !open;
        appSelect.disabled = open;
    }

    function close() {
        if (channel) {
            const closing = channel;
            channel = null;
            closing.close();
        }
        connected(false);
    }

    function open() {
        close();
        const app = appSelect.value;
        screen = new Screen();
        show();
        status.textContent = `Connected to ${app}.`;
        const mine = cockpit.channel({
            payload: "stream",
            spawn: ["podmgr", "enter", pod, "--app", app],
            pty: true,
            window: { rows: ROWS, cols: COLUMNS },
            environ: ["TERM=dumb"],
            superuser: "try",
            err: "out",
        });
        channel = mine;
        mine.addEventListener("message", (event, data) => {
            screen.feed(data);
            show();
        });
        mine.addEventListener("close", (event, options) => {
            if (channel !== mine && channel !== null)
                return;
            channel = null;
            connected(false);
            const exit = options["exit-status"];
            status.textContent = options.problem
                ? `Disconnected: ${cockpit.message(options.problem)}`
                : `Disconnected (exit status ${exit === undefined ? "unknown" : exit}).`;
        });
        connected(true);
        input.focus();
    }

    const connect = button("Connect", { action: "console-connect", kind: "primary", onclick: open });
    const disconnect = button("Disconnect", { action: "console-disconnect", onclick: close });
    const interrupt = button("Ctrl-C", { action: "console-interrupt", onclick: () => send("\x03") });
    const endOfInput = button("Ctrl-D", { action: "console-eof", onclick: () => send("\x04") });
    const form = h("form", {
        class: "pm-console-form",
        on: {
            submit: event => {
                event.preventDefault();
                send(input.value + "\r");
                input.value = "";
            },
        },
    }, input, h("button", {
        type: "submit", class: ["pm-button", "pm-button-secondary"], dataset: { action: "console-send" },
    }, "Send"));
    appSelect.addEventListener("change", () => connected(false));

    const element = h("div", { class: "pm-console", id: "console" },
                      h("div", { class: "pm-toolbar" }, appSelect, connect, disconnect, interrupt, endOfInput),
                      status, output, form);
    connected(false);

    function update(apps, mayManage) {
        allowed = mayManage;
        const chosen = appSelect.value;
        if ([...appSelect.options].map(option => option.value).join("\n") !== apps.join("\n")) {
            replace(appSelect, apps.map(app => h("option", { value: app }, app)));
            appSelect.value = apps.includes(chosen) ? chosen : (apps[0] || "");
        }
        if (!channel) {
            connected(false);
            connect.title = allowed ? "" : "Needs administrative access";
            if (!allowed)
                status.textContent = "A console needs the right to manage pods (administrative access).";
            else if (status.textContent.startsWith("A console needs"))
                status.textContent = "";
        }
    }

    return { element, update, close };
}
