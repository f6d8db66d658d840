// Customer self-service: scan the return code (typed, the kiosk's scanner
// or the browser camera), photograph the parcel, drop it, take the receipt.

import { $, on, onSubmit } from "./dom.js";
import { api } from "./api.js";
import { t, pick, when, onLanguage } from "./text.js";
import { kiosk, hw } from "./station.js";
import { startCamera, stopCamera, cameraOn, snap } from "./camera.js";
import { show, current, onShow } from "./nav.js";
import { subscribe } from "./stream.js";

const cust = { parcel: null, key: null, photos: 0, uploading: false };

export function startOver() {
  cust.parcel = null;
  cust.key = null;
  cust.photos = 0;
  $("c-code").value = "";
  $("c-progress-code").value = "";
  $("c-progress-out").replaceChildren();
  show("c-start");
}

function checking() {
  $("c-verdict").className = "verdict";
  $("c-verdict").textContent = t("c.checking");
  $("c-verdict-text").textContent = "";
  $("c-return-no").textContent = "";
  $("c-result-next").hidden = true;
  show("c-result");
}

// What the customer sees of a decided scan, however it was made.
function answer(a) {
  const ok = a.decision !== "reject";
  $("c-verdict").className = "verdict " + (ok ? "accept" : "reject");
  $("c-verdict").textContent = t(ok ? "c." + a.decision : "c.reject");
  $("c-verdict-text").textContent = ok ? "" : pick(a.message);
  $("c-return-no").textContent = (a.return && a.return.return_no) || "";
  cust.parcel = a.parcel_id || null;
  cust.key = a.key || null;
  cust.photos = 0;
  $("c-result-next").hidden = !ok;
  if (current() !== "c-result") show("c-result");
  if (ok) $("c-result-next").focus();
}

function failed(err) {
  if (current() !== "c-result") show("c-result");
  $("c-verdict").className = "verdict reject";
  $("c-verdict").textContent = t("c.reject");
  $("c-verdict-text").textContent = err.message;
}

onSubmit("c-scan-form", async () => {
  const code = $("c-code").value.trim();
  $("c-code").value = "";
  if (!code) return;
  checking();
  try {
    answer(await api("POST", "/api/v1/scans", { code, channel: "self" }, { anonymous: true }));
  } catch (err) {
    failed(err);
  }
});

// A scan from the kiosk's own customer scanner: the daemon has decided it;
// the screen fetches the answer by id and moves on by itself.
subscribe("scan", async (ev) => {
  if (!ev || !ev.scan_id || ev.channel !== "self") return;
  if (current() !== "c-start" && current() !== "c-result") return;
  stopCamScan();
  try {
    const scan = await api("GET", "/api/v1/scans/" + ev.scan_id, undefined, { anonymous: true });
    if (scan.answer) answer(scan.answer);
  } catch (err) {
    failed(err);
  }
});

// ---- the browser camera as a scanner ------------------------------------
// Without a scanner for customers (and without the daemon's own camera),
// the start screen looks for a code in the browser camera's frames a few
// times a second, one request at a time, until one is decided.
let camScan = null;
let camStarting = Promise.resolve();

// Resolves once the start screen's camera has shown or is known to be
// absent: the screen's layout is final (a button does not move under a
// finger).
export const settled = () => camStarting;

function startCamScan() {
  camStarting = startingCamScan();
}

async function startingCamScan() {
  if (camScan || hw.self_scanners > 0 || hw.camera) return;
  const scan = { busy: false, timer: null };
  camScan = scan;
  try {
    await startCamera($("c-scan-video"));
  } catch (e) {
    if (camScan === scan) camScan = null;
    return;
  }
  if (camScan !== scan) return;
  $("c-camscan").hidden = false;
  $("c-camscan-hint").hidden = false;
  scan.timer = setInterval(async () => {
    if (scan.busy || current() !== "c-start") return;
    scan.busy = true;
    try {
      const frame = await snap($("c-scan-video"));
      const a = await api("POST", "/api/v1/scans/image?channel=self", frame, { anonymous: true });
      if (camScan === scan && current() === "c-start") {
        stopCamScan();
        answer(a);
      }
    } catch (err) {
      // No code in this frame: try the next one.
      if (err.code !== "no_code" && err.code !== "network") $("c-camscan-hint").textContent = err.message;
    } finally {
      scan.busy = false;
    }
  }, 350);
}

function stopCamScan() {
  if (!camScan) return;
  clearInterval(camScan.timer);
  camScan = null;
  $("c-camscan").hidden = true;
  $("c-camscan-hint").hidden = true;
  $("c-camscan-hint").textContent = t("c.scan.camera");
  if (current() !== "c-photo" && current() !== "k-console") stopCamera();
}

// ---- photos, drop, receipt ------------------------------------------------
on("c-result-back", "click", startOver);
on("c-result-next", "click", async () => {
  show("c-photo");
  updatePhotoCount();
  $("c-photo-err").textContent = "";
  try {
    await startCamera($("c-video"));
  } catch (e) {
    $("c-photo-err").textContent = t("c.photo.nocamera");
  }
});

function updatePhotoCount() {
  $("c-photo-count").textContent = t("c.photo.count", { n: cust.photos, min: kiosk.min_photos });
  $("c-photo-next").disabled = cust.uploading || cust.photos < kiosk.min_photos;
  $("c-photo-take").disabled = cust.uploading;
}
onLanguage(() => {
  if (current() === "c-photo") updatePhotoCount();
});

// One photo at a time: while one is on its way (a 12 MP photo takes a
// moment on a kiosk) the buttons are off and the screen says so, so a
// second tap never sends it twice.
async function upload(take) {
  if (cust.uploading) return;
  cust.uploading = true;
  $("c-photo-err").textContent = "";
  updatePhotoCount();
  try {
    const blob = await take();
    $("c-photo-busy").hidden = false;
    const path = "/api/v1/parcels/" + cust.parcel + "/photos?kind=parcel&key=" + encodeURIComponent(cust.key);
    await api("POST", path, blob, { anonymous: true });
    cust.photos += 1;
  } catch (err) {
    $("c-photo-err").textContent = err.message;
  } finally {
    cust.uploading = false;
    $("c-photo-busy").hidden = true;
    updatePhotoCount();
  }
}

on("c-photo-take", "click", () => {
  if (!cameraOn()) {
    $("c-file").click();
    return;
  }
  upload(() => snap($("c-video")));
});
on("c-file", "change", async () => {
  const f = $("c-file").files[0];
  $("c-file").value = "";
  if (f) await upload(async () => f);
});
on("c-photo-next", "click", () => {
  stopCamera();
  $("c-drop-err").textContent = "";
  show("c-drop");
});
on("c-drop-confirm", "click", async () => {
  $("c-drop-confirm").disabled = true;
  try {
    const path = "/api/v1/parcels/" + cust.parcel + "/drop?key=" + encodeURIComponent(cust.key);
    const r = await api("POST", path, undefined, { anonymous: true });
    $("c-receipt-qr").src = r.svg;
    $("c-receipt-rn").textContent = r.return_no;
    $("c-receipt-at").textContent = when(r.at);
    show("c-receipt");
  } catch (err) {
    $("c-drop-err").textContent = err.message;
  } finally {
    $("c-drop-confirm").disabled = false;
  }
});
on("c-receipt-done", "click", startOver);

// ---- nobody there -----------------------------------------------------------
// Customer screens go back to the start when nobody touches them.
let idleTimer = null;
let idleTick = null;

function resetIdle() {
  clearTimeout(idleTimer);
  clearInterval(idleTick);
  $("idle-note").hidden = true;
  if (!current().startsWith("c-") || current() === "c-start") return;
  const total = kiosk.kiosk_idle_s * 1000;
  const started = Date.now();
  idleTimer = setTimeout(startOver, total);
  idleTick = setInterval(() => {
    const left = Math.ceil((total - (Date.now() - started)) / 1000);
    $("idle-note").hidden = left > 10;
    $("idle-note").textContent = t("c.idle", { s: left });
  }, 1000);
}
["pointerdown", "keydown", "touchstart"].forEach((ev) => on(document, ev, resetIdle, true));

onShow((id) => {
  if (id === "c-start") startCamScan();
  else stopCamScan();
  resetIdle();
});
