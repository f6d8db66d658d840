// Handing parcels and bags over to a courier: scan them into a list, then
// confirm it with the courier's name and carrier.

import { $, on, onSubmit, clone, line, say } from "./dom.js";
import { api } from "./api.js";
import { t } from "./text.js";
import { registerTab } from "./nav.js";
import { refreshOverdue } from "./overdue.js";

let items = []; // {kind: "bag" | "waybill", value}

export async function loadCarriers() {
  try {
    const r = await api("GET", "/api/v1/carriers");
    $("k-ho-carrier").replaceChildren(
      ...r.carriers.map((c) => {
        const option = line("option", c.name);
        option.value = c.code;
        return option;
      }),
    );
  } catch (e) {
    /* keep empty */
  }
}

function add(kind, value) {
  if (!value || items.some((x) => x.value === value)) return;
  items.push({ kind, value });
  render();
}

function render() {
  const rows = items.map((x, i) => {
    const row = clone("handover-item", { value: x.value, kind: x.kind === "bag" ? "🛍" : "" });
    const remove = row.querySelector("button");
    remove.dataset.i = String(i);
    on(remove, "click", () => {
      items.splice(i, 1);
      render();
    });
    return row;
  });
  $("k-ho-list").replaceChildren(...rows);
}

// Three fields and no submit button: Enter would not submit the form.
onSubmit("k-ho-form", () => {});
on("k-ho-scan", "keydown", async (e) => {
  if (e.key !== "Enter") return;
  e.preventDefault();
  const v = $("k-ho-scan").value.trim().toUpperCase();
  $("k-ho-scan").value = "";
  if (!v || items.some((x) => x.value === v)) return;
  let kind = "waybill";
  try {
    const bags = await api("GET", "/api/v1/bags");
    if (bags.bags.some((b) => b.code === v)) kind = "bag";
  } catch (err) {
    /* treat as waybill */
  }
  add(kind, v);
  $("k-ho-scan").focus();
});

on("k-ho-confirm", "click", async () => {
  const body = {
    courier: $("k-ho-courier").value.trim(),
    carrier: $("k-ho-carrier").value,
    waybill_nos: items.filter((x) => x.kind === "waybill").map((x) => x.value),
    bag_ids: items.filter((x) => x.kind === "bag").map((x) => x.value),
  };
  try {
    const h = await api("POST", "/api/v1/handovers", body);
    items = [];
    render();
    say("k-ho-msg", t("k.handover.done", { n: h.parcels.length }) + " · " + h.id, true);
    refreshOverdue();
  } catch (err) {
    say("k-ho-msg", err.message, false);
  }
});

registerTab("handover", {
  enter: () => $("k-ho-courier").focus(),
  waybill(wb) {
    add("waybill", wb);
    return true;
  },
});
