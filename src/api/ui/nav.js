// Which screen shows, and which tab of the clerk console. Screens and tabs
// register what happens when they show; nothing else switches them.

import { $, on } from "./dom.js";
import { stopCamera } from "./camera.js";

const SCREENS = ["c-start", "c-result", "c-photo", "c-drop", "c-receipt", "c-progress", "k-login", "k-console"];
// The screens that keep the camera on while they show.
const CAMERA = ["c-start", "c-photo", "k-console"];
const FOCUS = { "c-start": "c-code", "c-progress": "c-progress-code", "k-login": "k-id" };

let screen = "c-start";
let tab = "checkin";
const shown = [];
const tabs = {};

export const current = () => screen;
export const currentTab = () => tab;

// fn(id) after any screen shows.
export const onShow = (fn) => shown.push(fn);

export function show(id) {
  SCREENS.forEach((s) => {
    $(s).hidden = s !== id;
  });
  screen = id;
  document.body.dataset.screen = id;
  if (!CAMERA.includes(id)) stopCamera();
  shown.forEach((fn) => fn(id));
  if (FOCUS[id]) setTimeout(() => $(FOCUS[id]).focus(), 0);
}

// A tab of the clerk console: `enter()` when it is selected, and
// `waybill(wb)` (true if taken) for a courier barcode from the counter
// scanner while it shows.
export function registerTab(name, handlers) {
  tabs[name] = handlers;
}

export function selectTab(name) {
  tab = name;
  document.querySelectorAll(".tabs button[data-tab]").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab").forEach((s) => {
    s.hidden = s.id !== "tab-" + name;
  });
  if (name !== "checkin") stopCamera();
  if (tabs[name] && tabs[name].enter) tabs[name].enter();
}

// A courier barcode goes to the tab the clerk is on; false if it has no
// use for it there.
export function waybillToTab(wb) {
  const handlers = tabs[tab];
  return Boolean(handlers && handlers.waybill && handlers.waybill(wb));
}

document.querySelectorAll(".tabs button[data-tab]").forEach((b) => on(b, "click", () => selectTab(b.dataset.tab)));
