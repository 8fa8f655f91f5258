// SPDX-License-Identifier: LGPL-2.1-or-later
//
// Health checks on the page: a label for the pod's Health and each app's (AppHealth),
// as org.podmgr1 reads them from the checks' state; both change with PropertiesChanged,
// which bus.watchPods follows, so the labels follow live.

import { h } from "./dom.js";

const WORDS = {
    starting: "starting",
    healthy: "healthy",
    unhealthy: "unhealthy",
};

// <span class="pm-health pm-health-HEALTH" data-health=HEALTH>, or null for no health
// (no check, or nothing with a check runs): a service that predates the property shows
// nothing either.
export function healthLabel(health) {
    if (!health)
        return null;
    const known = Object.hasOwn(WORDS, health);
    return h("span", {
        class: ["pm-health", `pm-health-${known ? health : "other"}`],
        dataset: { health },
        title: "Health check",
    }, known ? WORDS[health] : health);
}

// The app's health from the pod's AppHealth, "" for an app without a check.
export function appHealth(pod, app) {
    const found = (pod.AppHealth || []).find(([name]) => name === app);
    return found ? found[1] : "";
}
