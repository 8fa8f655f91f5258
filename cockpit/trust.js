// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Trusted keys: a first version that renders its heading only, so that the router loads it.

import { h } from "./dom.js";

export function show(main, path) {
    main.appendChild(h("h1", { class: "pm-title" }, "Trusted keys"));
}
