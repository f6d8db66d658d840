// The kiosk screen: customer self-service (the default) and the clerk
// console. ES modules, one per screen, no build step and no network beyond
// the daemon (kiosks are offline). Importing a screen's module binds its
// events; this one starts the whole.

import { $, on } from "./dom.js";
import { api } from "./api.js";
import { applyLanguage, switchLanguage } from "./text.js";
import { kiosk } from "./station.js";
import { show } from "./nav.js";
import { listen } from "./stream.js";
import { loadDevices } from "./status.js";
import { settled } from "./customer.js";
import "./progress.js";
import "./clerk.js";
import "./checkin.js";
import "./lists.js";
import "./handover.js";
import "./bags.js";

on("lang", "click", switchLanguage);

async function boot() {
  applyLanguage();
  try {
    Object.assign(kiosk, await api("GET", "/api/v1/kiosk", undefined, { anonymous: true }));
    $("station-name").textContent = kiosk.station_name;
  } catch (e) {
    /* defaults until the daemon answers */
  }
  await loadDevices();
  listen(null);
  show("c-start");
  await settled();
  document.body.dataset.ready = "1";
}

boot();
