// Bags: open one, scan parcels into it; a bag is handed over whole.

import { $, onSubmit, on, clone, say } from "./dom.js";
import { api } from "./api.js";
import { t } from "./text.js";
import { registerTab } from "./nav.js";

let open = null;

async function loadBags() {
  try {
    const r = await api("GET", "/api/v1/bags");
    const rows = r.bags.map((b) => {
      const row = clone("bag", { code: b.code, count: t("k.bags.count", { n: b.parcel_count }), select: t("k.bags.select") });
      const select = row.querySelector("button");
      select.dataset.bag = b.id;
      on(select, "click", () => selectBag(b.id).catch((err) => say("k-bag-msg", err.message, false)));
      return row;
    });
    $("k-bags").replaceChildren(...rows);
  } catch (err) {
    say("k-bag-msg", err.message, false);
  }
}

async function selectBag(id) {
  const b = await api("GET", "/api/v1/bags/" + encodeURIComponent(id));
  open = b;
  $("k-bag-add").hidden = false;
  $("k-bag-current").textContent = b.code;
  const rows = (b.parcels || []).map((p) => clone("bag-parcel", { waybill: p.waybill_no || "", return_no: p.return_no }));
  $("k-bag-parcels").replaceChildren(...rows);
  $("k-bag-scan").focus();
}

onSubmit("k-bag-new", async () => {
  const code = $("k-bag-code").value.trim();
  $("k-bag-code").value = "";
  try {
    const b = await api("POST", "/api/v1/bags", code ? { code } : {});
    await loadBags();
    await selectBag(b.id);
    say("k-bag-msg", b.code, true);
  } catch (err) {
    say("k-bag-msg", err.message, false);
  }
});

onSubmit("k-bag-add", async () => {
  const wb = $("k-bag-scan").value.trim();
  $("k-bag-scan").value = "";
  if (!wb || !open) return;
  try {
    await api("POST", "/api/v1/bags/" + open.id + "/parcels", { waybill_no: wb });
    await selectBag(open.id);
    await loadBags();
    say("k-bag-msg", wb, true);
  } catch (err) {
    say("k-bag-msg", err.message, false);
  }
});

registerTab("bags", {
  enter: loadBags,
  waybill(wb) {
    if (!open) return false;
    $("k-bag-scan").value = wb;
    $("k-bag-add").requestSubmit();
    return true;
  },
});
