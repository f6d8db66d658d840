// The header's sync bar and the console's device banner, both kept current
// by the stream.

import { $ } from "./dom.js";
import { api } from "./api.js";
import { t, age, onLanguage } from "./text.js";
import { kiosk, hw } from "./station.js";
import { subscribe } from "./stream.js";

let sync = null;
let syncAt = 0;

function renderSync() {
  const bar = $("syncbar");
  if (!sync) {
    bar.hidden = true;
    $("offline").hidden = true;
    return;
  }
  bar.hidden = false;
  const state = !sync.configured ? "local" : sync.online ? "online" : "offline";
  bar.className = "sync " + state;
  let text = t("sync." + state);
  if (sync.pending_events > 0) {
    text += " · " + t("sync.pending", { n: sync.pending_events });
    // The stream sends sync state when it changes, not every second: the
    // oldest event ages here in between.
    if (sync.oldest_pending_s != null) {
      const aged = sync.oldest_pending_s + Math.floor((Date.now() - syncAt) / 1000);
      text += " · " + t("sync.oldest", { age: age(aged) });
    }
  }
  bar.textContent = text;
  bar.dataset.state = state;
  $("offline").hidden = state !== "offline";
}

export async function loadDevices() {
  try {
    Object.assign(hw, await api("GET", "/api/v1/devices", undefined, { anonymous: true }));
  } catch (e) {
    /* none known yet */
  }
  renderDevices();
}

function renderDevices() {
  const bad = Object.entries(hw.devices || {}).filter(([, d]) => d.state !== "ok" && d.state !== "starting");
  const parts = [];
  if (kiosk.clock_trusted === false) parts.push(t("clock.untrusted"));
  if (bad.length) {
    const each = bad.map(([name, d]) => t("dev.kind." + d.kind) + (name === d.kind ? "" : " " + name) + ": " + t("dev.state." + d.state));
    parts.push(t("dev.problem") + each.join(" · "));
  }
  $("k-devices").hidden = parts.length === 0;
  $("k-devices").textContent = parts.join(" — ");
}

onLanguage(renderSync);
onLanguage(renderDevices);
setInterval(renderSync, 5000);

subscribe("sync", (data) => {
  if (!data) return;
  sync = data;
  syncAt = Date.now();
  renderSync();
});
subscribe("clock", (data) => {
  if (!data) return;
  kiosk.clock_trusted = data.trusted;
  renderDevices();
});
subscribe("device", (d) => {
  if (!d) return;
  if (hw.devices[d.device]) hw.devices[d.device].state = d.state;
  else loadDevices();
  renderDevices();
});
