// The kiosk screen: customer self-service (default) and the clerk console.
// Plain JS, no build step, no network beyond the daemon (kiosks are offline).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const S = window.STRINGS;
  let lang = localStorage.getItem("yizhan.lang") === "en" ? "en" : "zh-CN";
  let kiosk = { min_photos: 1, kiosk_idle_s: 60, station_name: "" };
  let token = null; // the clerk session lives in memory only
  let clerkName = "";
  // The kiosk's own devices (GET /api/v1/devices), kept current by the stream.
  let hw = { devices: {}, self_scanners: 0, clerk_scanners: 0, camera: false, printer: false };

  // ---- strings ---------------------------------------------------------
  function t(key, vars) {
    let s = (S[lang] && S[lang][key]) || S["zh-CN"][key] || key;
    for (const k in vars || {}) s = s.replace("{" + k + "}", vars[k]);
    return s;
  }
  function applyLang() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
    document.querySelectorAll("[data-tp]").forEach((el) => { el.placeholder = t(el.dataset.tp); });
    renderSync();
    renderDevices();
  }
  function age(s) {
    if (s < 60) return t("age.s", { n: s });
    if (s < 3600) return t("age.m", { n: Math.floor(s / 60) });
    if (s < 86400) return t("age.h", { n: Math.floor(s / 3600) });
    return t("age.d", { n: Math.floor(s / 86400) });
  }
  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString(lang);
  }
  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  // ---- API -------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }
  async function api(method, path, body, opts) {
    const headers = {};
    if (token && !(opts && opts.anonymous)) headers["Authorization"] = "Bearer " + token;
    let payload;
    if (body instanceof Blob) { payload = body; headers["Content-Type"] = body.type || "image/jpeg"; }
    else if (body !== undefined) { payload = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
    let r;
    try {
      r = await fetch(path, { method, headers, body: payload });
    } catch (e) {
      $("neterr").hidden = false;
      throw new ApiError(0, "network", t("err.network"));
    }
    $("neterr").hidden = true;
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
    if (!r.ok) {
      const err = (json && json.error) || {};
      if (r.status === 401 && token && !(opts && opts.anonymous)) sessionEnded();
      // Known codes in the screen's language; the server's words (and the
      // code, for support) otherwise.
      const key = "err." + err.code;
      const words = S[lang][key] ? t(key) : (err.message || t("err.generic"));
      throw new ApiError(r.status, err.code || "error", words);
    }
    return json;
  }

  // ---- screens -----------------------------------------------------------
  const screens = ["c-start", "c-result", "c-photo", "c-drop", "c-receipt", "c-progress", "k-login", "k-console"];
  let current = "c-start";
  function show(id) {
    screens.forEach((s) => { $(s).hidden = s !== id; });
    current = id;
    document.body.dataset.screen = id;
    if (id !== "c-photo" && id !== "k-console" && id !== "c-start") stopCamera();
    if (id === "c-start") startCamScan(); else stopCamScan();
    resetIdle();
    const focus = { "c-start": "c-code", "c-progress": "c-progress-code", "k-login": "k-id" }[id];
    if (focus) setTimeout(() => $(focus).focus(), 0);
  }

  // Customer screens go back to the start when nobody touches them.
  let idleTimer = null, idleTick = null;
  function resetIdle() {
    clearTimeout(idleTimer); clearInterval(idleTick);
    $("idle-note").hidden = true;
    if (!current.startsWith("c-") || current === "c-start") return;
    const total = kiosk.kiosk_idle_s * 1000;
    const started = Date.now();
    idleTimer = setTimeout(() => startOver(), total);
    idleTick = setInterval(() => {
      const left = Math.ceil((total - (Date.now() - started)) / 1000);
      $("idle-note").hidden = left > 10;
      $("idle-note").textContent = t("c.idle", { s: left });
    }, 1000);
  }
  ["pointerdown", "keydown", "touchstart"].forEach((ev) => document.addEventListener(ev, resetIdle, true));

  // ---- camera ------------------------------------------------------------
  let stream = null;
  async function startCamera(video) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw new Error("no camera API");
    if (!stream) stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1600 }, facingMode: "environment" }, audio: false });
    video.srcObject = stream;
    await video.play().catch(() => {});
  }
  function stopCamera() {
    if (stream) { stream.getTracks().forEach((tr) => tr.stop()); stream = null; }
  }
  function snap(video) {
    return new Promise((resolve, reject) => {
      const w = video.videoWidth, h = video.videoHeight;
      if (!w || !h) return reject(new Error("camera not ready"));
      const c = $("snap"); c.width = w; c.height = h;
      c.getContext("2d").drawImage(video, 0, 0, w, h);
      c.toBlob((b) => (b ? resolve(b) : reject(new Error("no image"))), "image/jpeg", 0.88);
    });
  }

  // ---- customer flow -------------------------------------------------------
  const cust = { parcel: null, photos: 0, returnNo: "", uploading: false };
  function startOver() {
    cust.parcel = null; cust.key = null; cust.photos = 0; cust.returnNo = "";
    $("c-code").value = ""; $("c-progress-code").value = ""; $("c-progress-out").innerHTML = "";
    show("c-start");
  }
  function customerChecking() {
    $("c-verdict").className = "verdict"; $("c-verdict").textContent = t("c.checking");
    $("c-verdict-text").textContent = ""; $("c-return-no").textContent = "";
    $("c-result-next").hidden = true;
    show("c-result");
  }
  // What the customer sees of a decided scan, however it was made (typed,
  // the kiosk's scanner, a camera frame).
  function customerAnswer(a) {
    const ok = a.decision !== "reject";
    $("c-verdict").className = "verdict " + (ok ? "accept" : "reject");
    $("c-verdict").textContent = t(ok ? "c." + a.decision : "c.reject");
    $("c-verdict-text").textContent = ok ? "" : t("reason." + a.reason);
    cust.returnNo = (a.return && a.return.return_no) || "";
    $("c-return-no").textContent = cust.returnNo;
    cust.parcel = a.parcel_id || null; cust.key = a.key || null; cust.photos = 0;
    $("c-result-next").hidden = !ok;
    if (current !== "c-result") show("c-result");
    if (ok) $("c-result-next").focus();
  }
  function customerError(err) {
    if (current !== "c-result") show("c-result");
    $("c-verdict").className = "verdict reject"; $("c-verdict").textContent = t("c.reject");
    $("c-verdict-text").textContent = err.message;
  }
  $("c-scan-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const code = $("c-code").value.trim();
    $("c-code").value = "";
    if (!code) return;
    customerChecking();
    try {
      customerAnswer(await api("POST", "/api/v1/scans", { code, channel: "self" }, { anonymous: true }));
    } catch (err) { customerError(err); }
  });

  // Without a scanner for customers (and without the daemon's own camera),
  // the start screen looks for a code in the browser camera's frames a few
  // times a second, one request at a time, until one is decided.
  let camScan = null;
  async function startCamScan() {
    if (camScan || hw.self_scanners > 0 || hw.camera) return;
    camScan = { busy: false, timer: null };
    const scan = camScan;
    try { await startCamera($("c-scan-video")); }
    catch (e) { if (camScan === scan) camScan = null; return; }
    if (camScan !== scan) return;
    $("c-camscan").hidden = false; $("c-camscan-hint").hidden = false;
    scan.timer = setInterval(async () => {
      if (scan.busy || current !== "c-start") return;
      scan.busy = true;
      try {
        const frame = await snap($("c-scan-video"));
        const a = await api("POST", "/api/v1/scans/image?channel=self", frame, { anonymous: true });
        if (camScan === scan && current === "c-start") { stopCamScan(); customerAnswer(a); }
      } catch (err) {
        // No code in this frame: try the next one.
        if (err.code !== "no_code" && err.code !== "network") $("c-camscan-hint").textContent = err.message;
      } finally { scan.busy = false; }
    }, 350);
  }
  function stopCamScan() {
    if (!camScan) return;
    clearInterval(camScan.timer);
    camScan = null;
    $("c-camscan").hidden = true; $("c-camscan-hint").hidden = true;
    $("c-camscan-hint").textContent = t("c.scan.camera");
    if (current !== "c-photo" && current !== "k-console") stopCamera();
  }
  $("c-result-back").onclick = startOver;
  $("c-result-next").onclick = async () => {
    show("c-photo");
    updatePhotoCount();
    $("c-photo-err").textContent = "";
    try { await startCamera($("c-video")); }
    catch (e) { $("c-photo-err").textContent = t("c.photo.nocamera"); }
  };
  function updatePhotoCount() {
    $("c-photo-count").textContent = t("c.photo.count", { n: cust.photos, min: kiosk.min_photos });
    $("c-photo-next").disabled = cust.uploading || cust.photos < kiosk.min_photos;
    $("c-photo-take").disabled = !!cust.uploading;
  }
  // One photo at a time: while one is on its way (a 12 MP photo takes a
  // moment on a kiosk) the buttons are off and the screen says so, so a
  // second tap never sends it twice.
  async function uploadCustomerPhoto(take) {
    if (cust.uploading) return;
    cust.uploading = true;
    $("c-photo-err").textContent = "";
    updatePhotoCount();
    try {
      const blob = await take();
      $("c-photo-busy").hidden = false;
      await api("POST", "/api/v1/parcels/" + cust.parcel + "/photos?kind=parcel&key=" + encodeURIComponent(cust.key), blob, { anonymous: true });
      cust.photos += 1;
    } catch (err) { $("c-photo-err").textContent = err.message; }
    finally {
      cust.uploading = false;
      $("c-photo-busy").hidden = true;
      updatePhotoCount();
    }
  }
  $("c-photo-take").onclick = () => {
    if (!stream) { $("c-file").click(); return; }
    uploadCustomerPhoto(() => snap($("c-video")));
  };
  $("c-file").onchange = async () => {
    const f = $("c-file").files[0];
    $("c-file").value = "";
    if (f) await uploadCustomerPhoto(async () => f);
  };
  $("c-photo-next").onclick = () => { stopCamera(); $("c-drop-err").textContent = ""; show("c-drop"); };
  $("c-drop-confirm").onclick = async () => {
    $("c-drop-confirm").disabled = true;
    try {
      const r = await api("POST", "/api/v1/parcels/" + cust.parcel + "/drop?key=" + encodeURIComponent(cust.key), undefined, { anonymous: true });
      $("c-receipt-qr").src = r.svg;
      $("c-receipt-rn").textContent = r.return_no;
      $("c-receipt-at").textContent = when(r.at);
      show("c-receipt");
    } catch (err) { $("c-drop-err").textContent = err.message; }
    finally { $("c-drop-confirm").disabled = false; }
  };
  $("c-receipt-done").onclick = startOver;

  $("c-to-progress").onclick = () => show("c-progress");
  $("c-progress-back").onclick = startOver;
  $("c-progress-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const code = $("c-progress-code").value.trim();
    if (!code) return;
    const out = $("c-progress-out");
    try {
      const p = await api("GET", "/api/v1/returns/" + encodeURIComponent(code) + "/progress", undefined, { anonymous: true });
      let html = "<dl><dt>" + esc(t("c.receipt.rn")) + "</dt><dd class='mono'>" + esc(p.return_no) + "</dd>";
      if (p.authorization) html += "<dt></dt><dd>" + esc(t("progress." + p.authorization)) + "</dd>";
      if (p.parcel) html += "<dt>" + esc(t("progress.parcel")) + "</dt><dd>" + esc(t("progress.state." + p.parcel.state)) + " · " + esc(when(p.parcel.dropped_off_at || p.parcel.updated_at)) + "</dd>";
      if (p.platform) html += "<dt>" + esc(t("progress.platform")) + "</dt><dd>" + esc(p.platform.status) + " · " + esc(when(p.platform.at)) + "</dd>";
      out.innerHTML = html + "</dl>";
    } catch (err) {
      out.innerHTML = "<p class='error'>" + esc(err.code === "unknown_return" ? t("progress.none") : err.message) + "</p>";
    }
  });
  $("c-to-clerk").onclick = () => { $("k-login-err").textContent = ""; show("k-login"); };

  // ---- clerk login -----------------------------------------------------------
  $("k-login-back").onclick = startOver;
  $("k-login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("k-login-err").textContent = "";
    try {
      const r = await api("POST", "/api/v1/sessions", { clerk_id: $("k-id").value.trim(), pin: $("k-pin").value }, { anonymous: true });
      token = r.token; clerkName = r.name;
      listen();
      $("k-pin").value = "";
      $("k-who").textContent = r.name;
      show("k-console");
      selectTab("checkin");
      resetCheckin();
      loadCarriers();
      refreshOverdue();
    } catch (err) {
      $("k-pin").value = "";
      $("k-login-err").textContent = err.code === "too_many_attempts" ? t("k.login.locked") + " (" + err.message + ")" : t("k.login.wrong");
    }
  });
  function sessionEnded() {
    token = null;
    listen();
    stopCamera();
    $("k-login-err").textContent = t("k.login.expired");
    show("k-login");
  }
  $("k-logout").onclick = async () => {
    try { await api("DELETE", "/api/v1/sessions/current"); } catch (e) { /* gone already */ }
    token = null; listen(); stopCamera(); startOver();
  };

  // ---- clerk console: tabs ---------------------------------------------------
  let tab = "checkin";
  function selectTab(name) {
    tab = name;
    document.querySelectorAll(".tabs button[data-tab]").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
    document.querySelectorAll(".tab").forEach((s) => { s.hidden = s.id !== "tab-" + name; });
    if (name === "checkin") { focusField(); if (step === "photo") startCamera($("k-video")).catch(() => {}); }
    else stopCamera();
    if (name === "parcels") loadParcels();
    if (name === "handover") { $("k-ho-courier").focus(); }
    if (name === "bags") loadBags();
    if (name === "exceptions") loadExceptions();
  }
  document.querySelectorAll(".tabs button[data-tab]").forEach((b) => { b.onclick = () => selectTab(b.dataset.tab); });

  // ---- clerk console: check-in (scanner as keyboard + Enter) ---------------------
  const STEPS = ["scan", "photo", "waybill", "items", "confirm"];
  let step = "scan";
  const ck = { parcel: null, ret: null, photos: 0, waybill: "", items: [], uploading: false };
  function focusField() { setTimeout(() => $("k-field").focus(), 0); }
  function setStep(s) {
    step = s;
    const i = STEPS.indexOf(s);
    document.querySelectorAll("#k-steps li").forEach((li, j) => {
      li.classList.toggle("current", j === i); li.classList.toggle("done", j < i);
    });
    $("k-prompt").textContent = t("k.prompt." + s);
    $("k-items").hidden = s !== "items";
    $("k-confirm").hidden = s !== "confirm";
    if (s === "photo") startCamera($("k-video")).catch(() => msg(t("c.photo.nocamera"), false));
    focusField();
  }
  function msg(text, ok) { $("k-msg").textContent = text; $("k-msg").className = "msg " + (ok ? "ok" : "bad"); }
  function resetCheckin() {
    ck.parcel = null; ck.ret = null; ck.photos = 0; ck.waybill = ""; ck.items = [];
    $("k-return").hidden = true; $("k-lookup").hidden = true; $("k-thumbs").innerHTML = "";
    $("k-condition").value = "intact"; $("k-weight").value = ""; $("k-note").value = ""; $("k-damage").checked = false;
    setStep("scan");
  }
  function showReturn(ret, extra) {
    const card = $("k-return");
    card.hidden = false; card.className = "card accept";
    card.innerHTML = "<b class='mono'>" + esc(ret.return_no) + "</b>" + (ret.order_no ? " · " + esc(ret.order_no) : "") +
      (extra ? " · " + esc(extra) : "") + (ck.waybill ? "<br>" + esc(t("k.waybill")) + ": <span class='mono'>" + esc(ck.waybill) + "</span>" : "");
  }
  async function clerkScan(code) {
    await clerkAnswer(await api("POST", "/api/v1/scans", { code, channel: "clerk" }));
  }
  // A decided scan on the clerk's side, typed or from the counter scanner.
  async function clerkAnswer(a) {
    if (a.decision === "reject") {
      if (a.reason === "already_dropped_off" && a.return) {
        // A self-service drop-off waiting for its waybill: complete it.
        const list = await api("GET", "/api/v1/parcels?state=dropped&limit=1000");
        const p = list.parcels.find((x) => x.return_no === a.return.return_no);
        if (p) return completeDropped(p);
      }
      $("k-return").hidden = false; $("k-return").className = "card reject";
      $("k-return").textContent = (a.return ? a.return.return_no + " · " : "") + t("reason." + a.reason);
      msg(t("reason." + a.reason), false);
      return;
    }
    ck.parcel = a.parcel_id; ck.ret = a.return; ck.photos = 0;
    ck.items = (a.return.items || []).map((it) => ({ sku: it.sku, name: it.name, qty_expected: it.qty, qty: it.qty }));
    showReturn(a.return, a.decision === "accept_provisional" ? t("c.accept_provisional") : "");
    msg(t(a.decision === "accept" ? "c.accept" : "c.accept_provisional"), true);
    setStep("photo");
  }
  async function completeDropped(p) {
    const full = await api("GET", "/api/v1/parcels/" + p.id);
    const m = await api("GET", "/api/v1/returns?q=" + encodeURIComponent(p.return_no)).catch(() => ({ returns: [] }));
    ck.parcel = full.id; ck.ret = { return_no: full.return_no, order_no: full.order_no, items: [] };
    ck.photos = full.photos.length;
    const entry = (m.returns || []).find((r) => r.return_no === full.return_no);
    ck.items = ((entry && entry.items) || []).map((it) => ({ sku: it.sku, name: it.name, qty_expected: it.qty, qty: it.qty }));
    $("k-thumbs").innerHTML = full.photos.map((ph) => "<span>" + esc(ph.kind) + "</span>").join("");
    showReturn(ck.ret, t("k.state.dropped"));
    msg(t("k.state.dropped"), true);
    selectTab("checkin");
    setStep(ck.photos >= kiosk.min_photos ? "waybill" : "photo");
  }
  // As at the kiosk: one photo at a time, and the clerk sees it is in hand.
  async function clerkPhoto() {
    if (ck.uploading) { msg(t("k.photo.busy"), true); return; }
    ck.uploading = true;
    const kind = $("k-damage").checked ? "damage" : "parcel";
    try {
      const blob = await snap($("k-video"));
      msg(t("k.photo.busy"), true);
      await api("POST", "/api/v1/parcels/" + ck.parcel + "/photos?kind=" + kind, blob);
    } finally { ck.uploading = false; }
    ck.photos += 1;
    if (kind === "damage") $("k-condition").value = "damaged";
    $("k-thumbs").insertAdjacentHTML("beforeend", "<span>" + esc(kind) + " " + ck.photos + "</span>");
    msg(t("k.photos") + ": " + ck.photos, true);
  }
  // A courier barcode from the counter scanner goes where the clerk is.
  async function clerkWaybill(wb) {
    if (tab === "checkin" && ck.parcel && (step === "waybill" || step === "confirm" || (step === "photo" && ck.photos >= kiosk.min_photos))) {
      setWaybill(wb);
    } else if (tab === "handover") {
      if (!hoItems.some((x) => x.value === wb)) { hoItems.push({ kind: "waybill", value: wb }); renderHandover(); }
    } else if (tab === "bags" && bagCurrent) {
      $("k-bag-scan").value = wb;
      $("k-bag-add").requestSubmit();
    } else {
      msg(t("k.scanner.waybill_idle", { wb }), false);
    }
  }
  function setWaybill(wb) {
    ck.waybill = wb;
    showReturn(ck.ret, "");
    if (ck.items.length) { renderItems(); setStep("items"); } else setStep("confirm");
  }
  function renderItems() {
    $("k-items").innerHTML = "<b>" + esc(t("k.items")) + "</b>" + ck.items.map((it, i) =>
      "<label><span><input type='checkbox' data-i='" + i + "'" + (it.qty > 0 ? " checked" : "") + "> " + esc(it.name || it.sku) +
      " <span class='mono'>" + esc(it.sku) + "</span></span><input class='qty' data-i='" + i + "' inputmode='numeric' size='3' value='" + it.qty + "'> / " + it.qty_expected + "</label>").join("");
    $("k-items").querySelectorAll("input[type=checkbox]").forEach((cb) => {
      cb.onchange = () => { const it = ck.items[cb.dataset.i]; it.qty = cb.checked ? it.qty_expected : 0; renderItems(); };
    });
    $("k-items").querySelectorAll("input.qty").forEach((q) => {
      q.onchange = () => { const n = parseInt(q.value, 10); ck.items[q.dataset.i].qty = isNaN(n) ? 0 : Math.max(0, Math.min(n, ck.items[q.dataset.i].qty_expected)); renderItems(); };
    });
  }
  async function acceptParcel() {
    const body = { waybill_no: ck.waybill, condition: $("k-condition").value };
    const w = parseInt($("k-weight").value, 10);
    if (!isNaN(w)) body.weight_g = w;
    if ($("k-note").value.trim()) body.note = $("k-note").value.trim();
    if (ck.items.length) body.items = ck.items.map((it) => ({ sku: it.sku, qty: it.qty }));
    const r = await api("POST", "/api/v1/parcels/" + ck.parcel + "/accept", body);
    $("k-receipt").hidden = false;
    $("k-receipt").innerHTML = "<b class='good'>" + esc(t("k.accepted")) + "</b> <span class='mono'>" + esc(r.return_no) + "</span><br><img class='qr' src='" + esc(r.svg) + "' alt='receipt'>" +
      (hw.printer ? "<br><button id='k-reprint' class='secondary' data-parcel='" + esc(r.parcel_id) + "'>" + esc(t("k.reprint")) + "</button>" : "");
    if (hw.printer) {
      $("k-reprint").onclick = async (ev) => {
        try { await api("POST", "/api/v1/parcels/" + ev.target.dataset.parcel + "/receipt/print", {}); msg(t("k.reprint.queued"), true); }
        catch (err) { msg(err.message, false); }
      };
    }
    msg(t("k.accepted") + " " + r.return_no + " · " + r.waybill_no, true);
    const keep = $("k-msg").textContent;
    resetCheckin();
    msg(keep, true);
    refreshOverdue();
  }
  $("k-scan-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const v = $("k-field").value.trim();
    $("k-field").value = "";
    try {
      if (step === "scan") { if (v) await clerkScan(v); }
      else if (step === "photo") {
        if (!v) await clerkPhoto();
        else if (ck.photos >= kiosk.min_photos) setWaybill(v);
        else msg(t("c.photo.count", { n: ck.photos, min: kiosk.min_photos }), false);
      } else if (step === "waybill") { if (v) setWaybill(v); }
      else if (step === "items") setStep("confirm");
      else if (step === "confirm") { if (v) setWaybill(v); else await acceptParcel(); }
    } catch (err) {
      msg(err.message, false);
      if (err.code === "waybill_in_custody" || err.code === "invalid_waybill") setStep("waybill");
    }
    focusField();
  });
  $("k-accept").onclick = async () => { try { await acceptParcel(); } catch (err) { msg(err.message, false); } };
  $("k-reject").onclick = async () => {
    if (!ck.parcel) return;
    const reason = prompt(t("k.reject.reason"));
    if (!reason) return;
    try { await api("POST", "/api/v1/parcels/" + ck.parcel + "/reject", { reason }); msg(t("k.state.rejected"), true); resetCheckin(); }
    catch (err) { msg(err.message, false); }
  };
  $("k-cancel").onclick = () => { resetCheckin(); msg("", true); };
  $("k-cantscan").onclick = () => { $("k-lookup").hidden = false; $("k-lookup-q").focus(); };
  $("k-lookup-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const q = $("k-lookup-q").value.trim();
    if (!q) return;
    try {
      const r = await api("GET", "/api/v1/returns?q=" + encodeURIComponent(q));
      $("k-lookup-out").innerHTML = r.returns.length ? r.returns.map((x) =>
        "<li><span class='mono'>" + esc(x.return_no) + "</span>" + esc(x.order_no || "") + " " + esc((x.items || []).map((i) => i.name).join(", ")) +
        "<button class='primary' data-rn='" + esc(x.return_no) + "'>✓</button></li>").join("") : "<li>" + esc(t("k.lookup.none")) + "</li>";
      $("k-lookup-out").querySelectorAll("button[data-rn]").forEach((b) => {
        b.onclick = async () => { $("k-lookup").hidden = true; try { await clerkScan(b.dataset.rn); } catch (err) { msg(err.message, false); } };
      });
    } catch (err) { msg(err.message, false); }
  });

  // ---- clerk console: lists ------------------------------------------------------
  let listState = "dropped";
  document.querySelectorAll(".filters button").forEach((b) => { b.onclick = () => { listState = b.dataset.state; loadParcels(); }; });
  function parcelRow(p, action) {
    return "<tr class='" + (p.overdue ? "overdue-row" : "") + "'><td class='mono'>" + esc(p.return_no) + "</td><td class='mono'>" + esc(p.waybill_no || "") +
      "</td><td>" + esc(t("k.state." + p.state)) + (p.condition === "damaged" ? " · " + esc(t("k.damaged")) : "") + (p.partial ? " · " + esc(t("k.partial")) : "") +
      "</td><td>" + esc(t("k.since")) + " " + esc(when(p.custody_at)) + (p.overdue ? " <b class='overdue'>" + esc(t("k.overdue")) + "</b>" : "") +
      "</td><td>" + (action || "") + "</td></tr>";
  }
  async function loadParcels() {
    document.querySelectorAll(".filters button").forEach((b) => b.classList.toggle("active", b.dataset.state === listState));
    try {
      const r = await api("GET", "/api/v1/parcels?state=" + listState + "&limit=500");
      $("k-parcels").innerHTML = r.parcels.length ? r.parcels.map((p) => parcelRow(p, p.state === "dropped" ? "<button class='primary' data-complete='" + esc(p.id) + "'>" + esc(t("k.complete")) + "</button>" : "")).join("") : "<tr><td>" + esc(t("k.none")) + "</td></tr>";
      $("k-parcels").querySelectorAll("button[data-complete]").forEach((b) => {
        b.onclick = () => completeDropped({ id: b.dataset.complete, return_no: "" }).catch((err) => msg(err.message, false));
      });
    } catch (err) { $("k-parcels").innerHTML = "<tr><td class='error'>" + esc(err.message) + "</td></tr>"; }
  }
  async function refreshOverdue() {
    if (!token) return;
    try {
      let n = 0;
      for (const s of ["dropped", "accepted", "held"]) {
        const r = await api("GET", "/api/v1/parcels?state=" + s + "&limit=1000");
        n += r.parcels.filter((p) => p.overdue).length;
      }
      $("k-overdue").hidden = n === 0;
      $("k-overdue").textContent = t("k.overdue.count", { n });
    } catch (e) { /* shown elsewhere */ }
  }

  // ---- clerk console: handover ---------------------------------------------------
  let hoItems = []; // {kind: "bag"|"waybill", value}
  async function loadCarriers() {
    try {
      const r = await api("GET", "/api/v1/carriers");
      $("k-ho-carrier").innerHTML = r.carriers.map((c) => "<option value='" + esc(c.code) + "'>" + esc(c.name) + "</option>").join("");
    } catch (e) { /* keep empty */ }
  }
  function renderHandover() {
    $("k-ho-list").innerHTML = hoItems.map((x, i) => "<li><span class='mono'>" + esc(x.value) + "</span>" + (x.kind === "bag" ? "🛍" : "") + "<button class='link' data-i='" + i + "'>✕</button></li>").join("");
    $("k-ho-list").querySelectorAll("button[data-i]").forEach((b) => { b.onclick = () => { hoItems.splice(+b.dataset.i, 1); renderHandover(); }; });
  }
  // Three fields and no submit button: Enter would not submit the form.
  $("k-ho-form").addEventListener("submit", (e) => e.preventDefault());
  $("k-ho-scan").addEventListener("keydown", async (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();
    const v = $("k-ho-scan").value.trim().toUpperCase();
    $("k-ho-scan").value = "";
    if (!v || hoItems.some((x) => x.value === v)) return;
    let kind = "waybill";
    try { const bags = await api("GET", "/api/v1/bags"); if (bags.bags.some((b) => b.code === v)) kind = "bag"; } catch (err) { /* treat as waybill */ }
    hoItems.push({ kind, value: v });
    renderHandover();
    $("k-ho-scan").focus();
  });
  $("k-ho-confirm").onclick = async () => {
    const body = {
      courier: $("k-ho-courier").value.trim(), carrier: $("k-ho-carrier").value,
      waybill_nos: hoItems.filter((x) => x.kind === "waybill").map((x) => x.value),
      bag_ids: hoItems.filter((x) => x.kind === "bag").map((x) => x.value),
    };
    try {
      const h = await api("POST", "/api/v1/handovers", body);
      hoItems = []; renderHandover();
      $("k-ho-msg").className = "msg ok";
      $("k-ho-msg").textContent = t("k.handover.done", { n: h.parcels.length }) + " · " + h.id;
      refreshOverdue();
    } catch (err) { $("k-ho-msg").className = "msg bad"; $("k-ho-msg").textContent = err.message; }
  };

  // ---- clerk console: bags ---------------------------------------------------------
  let bagCurrent = null;
  async function loadBags() {
    try {
      const r = await api("GET", "/api/v1/bags");
      $("k-bags").innerHTML = r.bags.map((b) => "<li><span class='mono'>" + esc(b.code) + "</span>" + esc(t("k.bags.count", { n: b.parcel_count })) +
        "<button class='secondary' data-bag='" + esc(b.id) + "'>" + esc(t("k.bags.select")) + "</button></li>").join("");
      $("k-bags").querySelectorAll("button[data-bag]").forEach((b) => { b.onclick = () => selectBag(b.dataset.bag); });
    } catch (err) { $("k-bag-msg").textContent = err.message; }
  }
  async function selectBag(id) {
    const b = await api("GET", "/api/v1/bags/" + encodeURIComponent(id));
    bagCurrent = b;
    $("k-bag-add").hidden = false;
    $("k-bag-current").textContent = b.code;
    $("k-bag-parcels").innerHTML = (b.parcels || []).map((p) => "<li><span class='mono'>" + esc(p.waybill_no || "") + "</span>" + esc(p.return_no) + "</li>").join("");
    $("k-bag-scan").focus();
  }
  $("k-bag-new").addEventListener("submit", async (e) => {
    e.preventDefault();
    const code = $("k-bag-code").value.trim();
    $("k-bag-code").value = "";
    try {
      const b = await api("POST", "/api/v1/bags", code ? { code } : {});
      await loadBags(); await selectBag(b.id);
      $("k-bag-msg").className = "msg ok"; $("k-bag-msg").textContent = b.code;
    } catch (err) { $("k-bag-msg").className = "msg bad"; $("k-bag-msg").textContent = err.message; }
  });
  $("k-bag-add").addEventListener("submit", async (e) => {
    e.preventDefault();
    const wb = $("k-bag-scan").value.trim();
    $("k-bag-scan").value = "";
    if (!wb || !bagCurrent) return;
    try {
      await api("POST", "/api/v1/bags/" + bagCurrent.id + "/parcels", { waybill_no: wb });
      await selectBag(bagCurrent.id); await loadBags();
      $("k-bag-msg").className = "msg ok"; $("k-bag-msg").textContent = wb;
    } catch (err) { $("k-bag-msg").className = "msg bad"; $("k-bag-msg").textContent = err.message; }
  });

  // ---- clerk console: exceptions --------------------------------------------------
  async function loadExceptions() {
    try {
      const held = await api("GET", "/api/v1/parcels?state=held&limit=500");
      $("k-held").innerHTML = held.parcels.length ? held.parcels.map((p) => parcelRow(p, esc(p.hold_reason || "") +
        " <button class='danger' data-return='" + esc(p.id) + "'>" + esc(t("k.exc.return")) + "</button>")).join("") : "<tr><td>" + esc(t("k.none")) + "</td></tr>";
      $("k-held").querySelectorAll("button[data-return]").forEach((b) => {
        b.onclick = async () => {
          try { await api("POST", "/api/v1/parcels/" + b.dataset.return + "/return-to-customer"); $("k-exc-msg").className = "msg ok"; $("k-exc-msg").textContent = t("k.state.returned_to_customer"); loadExceptions(); }
          catch (err) { $("k-exc-msg").className = "msg bad"; $("k-exc-msg").textContent = err.message; }
        };
      });
      const acc = await api("GET", "/api/v1/parcels?state=accepted&limit=1000");
      const damaged = acc.parcels.filter((p) => p.condition === "damaged");
      $("k-damaged").innerHTML = damaged.length ? damaged.map((p) => parcelRow(p, esc(p.note || ""))).join("") : "<tr><td>" + esc(t("k.none")) + "</td></tr>";
    } catch (err) { $("k-exc-msg").className = "msg bad"; $("k-exc-msg").textContent = err.message; }
  }

  // ---- sync bar and live updates -------------------------------------------------
  let sync = null, syncAt = 0;
  setInterval(() => renderSync(), 5000);
  function renderSync() {
    const bar = $("syncbar");
    if (!sync) { bar.hidden = true; $("offline").hidden = true; return; }
    bar.hidden = false;
    const state = !sync.configured ? "local" : sync.online ? "online" : "offline";
    bar.className = "sync " + state;
    let text = t("sync." + state);
    if (sync.pending_events > 0) {
      text += " · " + t("sync.pending", { n: sync.pending_events });
      // The stream sends sync state when it changes, not every second:
      // the oldest event ages here in between.
      if (sync.oldest_pending_s != null) {
        const aged = sync.oldest_pending_s + Math.floor((Date.now() - syncAt) / 1000);
        text += " · " + t("sync.oldest", { age: age(aged) });
      }
    }
    bar.textContent = text;
    bar.dataset.state = state;
    $("offline").hidden = state !== "offline";
  }
  // ---- the kiosk's devices -------------------------------------------------------
  async function loadDevices() {
    try { hw = await api("GET", "/api/v1/devices", undefined, { anonymous: true }); } catch (e) { /* none known yet */ }
    renderDevices();
  }
  function renderDevices() {
    const bad = Object.entries(hw.devices || {}).filter(([, d]) => d.state !== "ok" && d.state !== "starting");
    const parts = [];
    if (kiosk.clock_trusted === false) parts.push(t("clock.untrusted"));
    if (bad.length) parts.push(t("dev.problem") + bad.map(([name, d]) =>
      t("dev.kind." + d.kind) + (name === d.kind ? "" : " " + name) + ": " + t("dev.state." + d.state)).join(" · "));
    $("k-devices").hidden = parts.length === 0;
    $("k-devices").textContent = parts.join(" — ");
  }
  // A scan from one of the kiosk's own scanners: the daemon has decided it;
  // the screen fetches what it needs by id and moves on by itself.
  async function deviceScan(ev) {
    if (!ev.scan_id) return;
    try {
      if (ev.channel === "self" && (current === "c-start" || current === "c-result")) {
        stopCamScan();
        const scan = await api("GET", "/api/v1/scans/" + ev.scan_id, undefined, { anonymous: true });
        if (scan.answer) customerAnswer(scan.answer);
      } else if (ev.channel === "clerk" && token && current === "k-console") {
        const scan = await api("GET", "/api/v1/scans/" + ev.scan_id);
        if (scan.code_type === "waybill") await clerkWaybill(scan.waybill_no);
        else if (tab === "checkin" && step === "scan") await clerkAnswer(scan.answer);
        focusField();
      }
    } catch (err) { if (current === "k-console") msg(err.message, false); }
  }

  // The stream: a clerk's (with the session's token, since an EventSource
  // sends no headers) carries parcel ids and state changes; the kiosk's
  // without a session carries nothing identifying a parcel.
  let es = null;
  function listen() {
    if (es) es.close();
    es = new EventSource("/api/v1/stream" + (token ? "?token=" + encodeURIComponent(token) : ""));
    es.addEventListener("scan", (e) => { try { deviceScan(JSON.parse(e.data)); } catch (err) { /* ignore */ } });
    es.addEventListener("clock", (e) => {
      try { kiosk.clock_trusted = JSON.parse(e.data).trusted; renderDevices(); } catch (err) { /* ignore */ }
    });
    es.addEventListener("device", (e) => {
      try {
        const d = JSON.parse(e.data);
        if (hw.devices[d.device]) hw.devices[d.device].state = d.state; else loadDevices();
        renderDevices();
      } catch (err) { /* ignore */ }
    });
    es.addEventListener("sync", (e) => { try { sync = JSON.parse(e.data); syncAt = Date.now(); renderSync(); } catch (err) { /* ignore */ } });
    const changed = () => {
      if (current !== "k-console") return;
      if (tab === "parcels") loadParcels();
      if (tab === "exceptions") loadExceptions();
      refreshOverdue();
    };
    es.addEventListener("parcel", changed);
    es.addEventListener("held", changed);
    es.addEventListener("lagged", changed);
    es.onerror = () => { /* EventSource reconnects by itself */ };
  }

  // ---- start -----------------------------------------------------------------------
  $("lang").onclick = () => {
    lang = lang === "en" ? "zh-CN" : "en";
    localStorage.setItem("yizhan.lang", lang);
    applyLang();
    if (current === "c-photo") updatePhotoCount();
  };
  async function boot() {
    applyLang();
    try {
      kiosk = await api("GET", "/api/v1/kiosk", undefined, { anonymous: true });
      $("station-name").textContent = kiosk.station_name;
    } catch (e) { /* defaults until the daemon answers */ }
    await loadDevices();
    listen();
    show("c-start");
    document.body.dataset.ready = "1";
  }
  boot();
})();
