// The clerk's check-in: scan (the counter scanner types the code and
// Enter), photos, waybill, items, confirm. One form field takes every step.

import { $, on, onSubmit, clone, put, line, say } from "./dom.js";
import { api, session } from "./api.js";
import { t, pick, onLanguage } from "./text.js";
import { kiosk, hw } from "./station.js";
import { startCamera, snap } from "./camera.js";
import { current, currentTab, registerTab, selectTab, waybillToTab } from "./nav.js";
import { subscribe } from "./stream.js";
import { refreshOverdue } from "./overdue.js";
import { poolCarriers, refreshPools } from "./pools.js";

const STEPS = ["scan", "photo", "waybill", "items", "confirm"];
let step = "scan";
const ck = { parcel: null, ret: null, photos: 0, waybill: "", pool: null, items: [], uploading: false, rules: {}, answers: {}, gtins: [] };

export const msg = (text, ok) => say("k-msg", text, ok);

// Back to the scanner field (the counter scanner types there), unless
// the clerk is typing into another field by then (weight, note).
function focusField() {
  setTimeout(() => {
    const el = document.activeElement;
    const text = el && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && !["checkbox", "radio"].includes(el.type)));
    const typing = text && el !== $("k-field");
    if (!typing) $("k-field").focus();
  }, 0);
}

function setStep(s) {
  step = s;
  const i = STEPS.indexOf(s);
  document.querySelectorAll("#k-steps li").forEach((li, j) => {
    li.classList.toggle("current", j === i);
    li.classList.toggle("done", j < i);
  });
  $("k-prompt").textContent = promptFor(s);
  $("k-items").hidden = s !== "items";
  offerNoLabel();
  $("k-confirm").hidden = s !== "confirm";
  if (s === "confirm") renderChecks();
  if (s === "photo") startCamera($("k-video")).catch(() => msg(t("c.photo.nocamera"), false));
  focusField();
}

// Where the items have barcodes, the clerk scans them rather than ticks.
const scansItems = () => ck.items.some((it) => it.gtin);
const promptFor = (s) => t(s === "items" && scansItems() ? "k.prompt.items.scan" : "k.prompt." + s);

onLanguage(() => {
  $("k-prompt").textContent = promptFor(step);
  if (ck.ret) showReturn(ck.ret, "");
  if (step === "items") renderItems();
  if (step === "confirm") renderChecks();
});

export function resetCheckin() {
  ck.parcel = null;
  ck.ret = null;
  ck.photos = 0;
  ck.waybill = "";
  ck.pool = null;
  ck.items = [];
  ck.rules = {};
  ck.answers = {};
  ck.gtins = [];
  $("k-return").hidden = true;
  $("k-lookup").hidden = true;
  $("k-thumbs").replaceChildren();
  $("k-condition").value = "intact";
  $("k-weight").value = "";
  delete $("k-weight").dataset.scale;
  $("k-note").value = "";
  $("k-damage").checked = false;
  setStep("scan");
}

function showReturn(ret, extra) {
  const card = $("k-return");
  card.hidden = false;
  card.className = "card accept";
  let about = (ret.order_no ? " · " + ret.order_no : "") + (extra ? " · " + extra : "");
  if (ck.rules.type) about += " · " + t("k.type." + ck.rules.type);
  if (ck.rules.carrier) about += " · " + t("k.carrier.designated", { c: ck.rules.carrier });
  const el = clone("return", { return_no: ret.return_no, about, "waybill-label": t("k.waybill"), waybill: ck.waybill });
  el.querySelector(".waybill-line").hidden = !ck.waybill && !ck.pool;
  if (ck.pool) put(el, "waybill", t("k.nolabel.used", { c: ck.pool }));
  card.replaceChildren(el);
}

function itemsOf(items) {
  return (items || []).map((it) => ({ sku: it.sku, name: it.name, gtin: it.gtin, qty_expected: it.qty, qty: it.qty }));
}

// The merchant's rules of the return (SPEC §2.5), as the scan or the
// manifest lookup gives them.
function rulesOf(ret) {
  const r = ret || {};
  return { type: r.type, checks: r.checks || [], freight: r.freight, carrier: r.carrier, weight_g: r.weight_g };
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
    $("k-return").hidden = false;
    $("k-return").className = "card reject";
    $("k-return").textContent = (a.return ? a.return.return_no + " · " : "") + pick(a.message);
    msg(pick(a.message), false);
    return;
  }
  ck.parcel = a.parcel_id;
  ck.ret = a.return;
  ck.photos = 0;
  ck.items = itemsOf(a.return.items);
  ck.rules = rulesOf(a.return);
  showReturn(a.return, a.decision === "accept_provisional" ? t("c.accept_provisional") : "");
  msg(t(a.decision === "accept" ? "c.accept" : "c.accept_provisional"), true);
  setStep("photo");
}

// A parcel a customer dropped off: the clerk goes on from its photos.
export async function completeDropped(p) {
  const full = await api("GET", "/api/v1/parcels/" + p.id);
  const m = await api("GET", "/api/v1/returns?q=" + encodeURIComponent(full.return_no)).catch(() => ({ returns: [] }));
  ck.parcel = full.id;
  ck.ret = { return_no: full.return_no, order_no: full.order_no, items: [] };
  ck.photos = full.photos.length;
  const entry = (m.returns || []).find((r) => r.return_no === full.return_no);
  ck.items = itemsOf(entry && entry.items);
  ck.rules = rulesOf(entry);
  $("k-thumbs").replaceChildren(...full.photos.map((ph) => line("span", ph.kind)));
  showReturn(ck.ret, t("k.state.dropped"));
  msg(t("k.state.dropped"), true);
  selectTab("checkin");
  setStep(ck.photos >= kiosk.min_photos ? "waybill" : "photo");
}

// As at the kiosk: one photo at a time, and the clerk sees it is in hand.
async function clerkPhoto() {
  if (ck.uploading) {
    msg(t("k.photo.busy"), true);
    return;
  }
  ck.uploading = true;
  const kind = $("k-damage").checked ? "damage" : "parcel";
  try {
    const blob = await snap($("k-video"));
    msg(t("k.photo.busy"), true);
    await api("POST", "/api/v1/parcels/" + ck.parcel + "/photos?kind=" + kind, blob);
  } finally {
    ck.uploading = false;
  }
  ck.photos += 1;
  if (kind === "damage") $("k-condition").value = "damaged";
  $("k-thumbs").append(line("span", kind + " " + ck.photos));
  offerNoLabel();
  msg(t("k.photos") + ": " + ck.photos, true);
}

// The carrier a number from the pool would be for: the merchant's
// designated one if its pool has numbers, else the fullest pool.
function poolFor() {
  const carriers = poolCarriers();
  if (ck.rules.carrier) return carriers.includes(ck.rules.carrier) ? ck.rules.carrier : null;
  return carriers[0] || null;
}

// A parcel without a courier label takes a number from a pool: offered
// where the waybill would be scanned.
function offerNoLabel() {
  const ready = step === "waybill" || (step === "photo" && ck.photos >= kiosk.min_photos);
  $("k-nolabel").hidden = !(ready && ck.parcel && poolFor());
}

on("k-nolabel", "click", () => {
  ck.pool = poolFor();
  if (!ck.pool) return;
  setWaybill("");
});

function setWaybill(wb) {
  ck.waybill = wb;
  if (wb) ck.pool = null;
  showReturn(ck.ret, "");
  if (ck.items.length) {
    renderItems();
    setStep("items");
  } else setStep("confirm");
}

function renderItems() {
  const rows = ck.items.map((it, i) => {
    const row = clone("item", { name: it.name || it.sku, sku: it.sku, expected: it.qty_expected });
    const box = row.querySelector("input[type=checkbox]");
    const qty = row.querySelector("input.qty");
    box.dataset.i = qty.dataset.i = String(i);
    box.checked = it.qty > 0;
    qty.value = String(it.qty);
    on(box, "change", () => {
      it.qty = box.checked ? it.qty_expected : 0;
      renderItems();
    });
    on(qty, "change", () => {
      const n = parseInt(qty.value, 10);
      it.qty = isNaN(n) ? 0 : Math.max(0, Math.min(n, it.qty_expected));
      renderItems();
    });
    return row;
  });
  $("k-items").replaceChildren(line("b", t("k.items")), ...rows);
}

// An item's barcode scanned at the items step: the first scan starts the
// count from nothing, each scan adds one of that item; a barcode of no
// item is noted for the merchant.
function scanItem(code) {
  if (!ck.gtins.length) ck.items.forEach((it) => (it.qty = 0));
  ck.gtins.push(code);
  const it = ck.items.find((x) => x.gtin === code);
  if (it) {
    it.qty = Math.min(it.qty + 1, it.qty_expected);
    msg(t("k.item.ticked", { name: it.name || it.sku }), true);
  } else msg(t("k.item.unexpected", { g: code }), false);
  renderItems();
}

// The merchant's checklist: yes / no / n.a. for each, big buttons.
function renderChecks() {
  const checks = ck.rules.checks || [];
  $("k-checks").hidden = checks.length === 0;
  const rows = checks.map((c) => {
    const row = clone("check", {
      label: c.label || c.id,
      required: c.required ? t("k.check.required") : "",
      yes: t("k.check.yes"),
      no: t("k.check.no"),
      na: t("k.check.na"),
    });
    row.dataset.check = c.id;
    row.querySelectorAll("button[data-answer]").forEach((b) => {
      b.classList.toggle("chosen", ck.answers[c.id] === b.dataset.answer);
      on(b, "click", () => {
        ck.answers[c.id] = b.dataset.answer;
        renderChecks();
        focusField();
      });
    });
    return row;
  });
  $("k-checks").replaceChildren(line("b", t("k.checks")), ...rows);
  $("k-weight-expected").textContent = ck.rules.weight_g ? t("k.weight.expected", { g: ck.rules.weight_g }) : "";
}

async function acceptParcel() {
  const checks = ck.rules.checks || [];
  if (checks.some((c) => !ck.answers[c.id])) {
    msg(t("k.checks.todo"), false);
    return;
  }
  const body = { waybill_no: ck.waybill, condition: $("k-condition").value };
  if (ck.pool) {
    body.waybill_source = "pool";
    body.carrier = ck.pool;
    delete body.waybill_no;
  }
  if (checks.length) body.checks = ck.answers;
  if (ck.gtins.length) body.gtins = ck.gtins;
  const w = parseInt($("k-weight").value, 10);
  if (!isNaN(w)) body.weight_g = w;
  if ($("k-note").value.trim()) body.note = $("k-note").value.trim();
  if (ck.items.length) body.items = ck.items.map((it) => ({ sku: it.sku, qty: it.qty }));
  const r = await api("POST", "/api/v1/parcels/" + ck.parcel + "/accept", body);
  const receipt = clone("accepted", { accepted: t("k.accepted"), return_no: r.return_no, reprint: t("k.reprint") });
  receipt.querySelector("img").src = r.svg;
  const reprint = receipt.querySelector("#k-reprint");
  if (hw.printer) {
    on(reprint, "click", async () => {
      try {
        await api("POST", "/api/v1/parcels/" + r.parcel_id + "/receipt/print", {});
        msg(t("k.reprint.queued"), true);
      } catch (err) {
        msg(err.message, false);
      }
    });
  } else reprint.remove();
  $("k-receipt").hidden = false;
  $("k-receipt").replaceChildren(receipt);
  const done = t("k.accepted") + " " + r.return_no + " · " + r.waybill_no;
  resetCheckin();
  msg(done, true);
  refreshOverdue();
  refreshPools();
}

onSubmit("k-scan-form", async () => {
  const v = $("k-field").value.trim();
  $("k-field").value = "";
  try {
    if (step === "scan") {
      if (v) await clerkScan(v);
    } else if (step === "photo") {
      if (!v) await clerkPhoto();
      else if (ck.photos >= kiosk.min_photos) setWaybill(v);
      else msg(t("c.photo.count", { n: ck.photos, min: kiosk.min_photos }), false);
    } else if (step === "waybill") {
      if (v) setWaybill(v);
    } else if (step === "items") {
      if (v && scansItems()) scanItem(v);
      else setStep("confirm");
    }
    else if (step === "confirm") {
      if (v) setWaybill(v);
      else await acceptParcel();
    }
  } catch (err) {
    msg(err.message, false);
    if (err.code === "waybill_in_custody" || err.code === "invalid_waybill") setStep("waybill");
  }
  focusField();
});

on("k-accept", "click", async () => {
  try {
    await acceptParcel();
  } catch (err) {
    msg(err.message, false);
  }
});
on("k-reject", "click", async () => {
  if (!ck.parcel) return;
  const reason = prompt(t("k.reject.reason"));
  if (!reason) return;
  try {
    await api("POST", "/api/v1/parcels/" + ck.parcel + "/reject", { reason });
    msg(t("k.state.rejected"), true);
    resetCheckin();
  } catch (err) {
    msg(err.message, false);
  }
});
on("k-cancel", "click", () => {
  resetCheckin();
  msg("", true);
});

// ---- a code that will not scan: look the return up ---------------------------
on("k-cantscan", "click", () => {
  $("k-lookup").hidden = false;
  $("k-lookup-q").focus();
});
onSubmit("k-lookup-form", async () => {
  const q = $("k-lookup-q").value.trim();
  if (!q) return;
  try {
    const r = await api("GET", "/api/v1/returns?q=" + encodeURIComponent(q));
    const rows = r.returns.map((x) => {
      const items = (x.items || []).map((i) => i.name).join(", ");
      const row = clone("lookup", { return_no: x.return_no, about: (x.order_no || "") + " " + items });
      const choose = row.querySelector("button");
      choose.dataset.rn = x.return_no;
      on(choose, "click", async () => {
        $("k-lookup").hidden = true;
        try {
          await clerkScan(x.return_no);
        } catch (err) {
          msg(err.message, false);
        }
      });
      return row;
    });
    $("k-lookup-out").replaceChildren(...(rows.length ? rows : [line("li", t("k.lookup.none"))]));
  } catch (err) {
    msg(err.message, false);
  }
});

// ---- the counter scanner -------------------------------------------------------
// A courier barcode goes where the clerk is: here, once the parcel is ready
// for its waybill.
registerTab("checkin", {
  enter() {
    focusField();
    if (step === "photo") startCamera($("k-video")).catch(() => {});
  },
  waybill(wb) {
    if (step === "items" && scansItems()) {
      scanItem(wb);
      return true;
    }
    const ready = step === "waybill" || step === "confirm" || (step === "photo" && ck.photos >= kiosk.min_photos);
    if (!ck.parcel || !ready) return false;
    setWaybill(wb);
    return true;
  },
});

// The counter scale's stable reading fills the weight, unless the clerk
// typed one.
subscribe("weight", (w) => {
  if (!w || !w.stable || w.grams <= 0) return;
  const el = $("k-weight");
  if (!el.value || el.value === el.dataset.scale) {
    el.value = String(w.grams);
    el.dataset.scale = el.value;
  }
});

// A scan from the counter scanner: the daemon has decided it; the console
// fetches it by id.
subscribe("scan", async (ev) => {
  if (!ev || !ev.scan_id || ev.channel !== "clerk") return;
  if (!session.token || current() !== "k-console") return;
  try {
    const scan = await api("GET", "/api/v1/scans/" + ev.scan_id);
    if (scan.code_type === "item") {
      if (currentTab() === "checkin" && step === "items" && scansItems()) scanItem(scan.gtin);
      else msg(t("k.scanner.item_idle", { g: scan.gtin }), false);
    } else if (scan.code_type === "waybill") {
      if (!waybillToTab(scan.waybill_no)) msg(t("k.scanner.waybill_idle", { wb: scan.waybill_no }), false);
    } else if (currentTab() === "checkin" && step === "scan") await clerkAnswer(scan.answer);
    focusField();
  } catch (err) {
    msg(err.message, false);
  }
});
