// The console's lists: parcels by state, and the exceptions (held and
// damaged parcels). Both follow the stream.

import { $, on, clone, line, say } from "./dom.js";
import { api } from "./api.js";
import { t, when } from "./text.js";
import { current, currentTab, registerTab } from "./nav.js";
import { subscribe } from "./stream.js";
import { completeDropped, msg } from "./checkin.js";
import { refreshOverdue } from "./overdue.js";

let listState = "dropped";

// One parcel as a table row; `action` (a node or text) in the last cell.
function parcelRow(p, ...action) {
  let state = t("k.state." + p.state);
  if (p.condition === "damaged") state += " · " + t("k.damaged");
  if (p.partial) state += " · " + t("k.partial");
  const row = clone("parcel", {
    return_no: p.return_no,
    waybill: p.waybill_no || "",
    state,
    since: t("k.since") + " " + when(p.custody_at),
    overdue: t("k.overdue"),
  });
  if (p.overdue) row.classList.add("overdue-row");
  else row.querySelector(".overdue").remove();
  row.querySelector(".action").append(...action);
  return row;
}

const none = () => {
  const row = document.createElement("tr");
  row.append(line("td", t("k.none")));
  return row;
};

function fill(tbody, rows) {
  tbody.replaceChildren(...(rows.length ? rows : [none()]));
}

async function loadParcels() {
  document.querySelectorAll(".filters button").forEach((b) => b.classList.toggle("active", b.dataset.state === listState));
  try {
    const r = await api("GET", "/api/v1/parcels?state=" + listState + "&limit=500");
    const rows = r.parcels.map((p) => {
      if (p.state !== "dropped") return parcelRow(p);
      const complete = line("button", t("k.complete"), "primary");
      complete.dataset.complete = p.id;
      on(complete, "click", () => completeDropped(p).catch((err) => msg(err.message, false)));
      return parcelRow(p, complete);
    });
    fill($("k-parcels"), rows);
  } catch (err) {
    const row = document.createElement("tr");
    row.append(line("td", err.message, "error"));
    $("k-parcels").replaceChildren(row);
  }
}

document.querySelectorAll(".filters button").forEach((b) =>
  on(b, "click", () => {
    listState = b.dataset.state;
    loadParcels();
  }),
);

async function loadExceptions() {
  const note = (text, ok) => say("k-exc-msg", text, ok);
  try {
    const held = await api("GET", "/api/v1/parcels?state=held&limit=500");
    const rows = held.parcels.map((p) => {
      const back = line("button", t("k.exc.return"), "danger");
      back.dataset.return = p.id;
      on(back, "click", async () => {
        try {
          await api("POST", "/api/v1/parcels/" + p.id + "/return-to-customer");
          note(t("k.state.returned_to_customer"), true);
          loadExceptions();
        } catch (err) {
          note(err.message, false);
        }
      });
      return parcelRow(p, (p.hold_reason || "") + " ", back);
    });
    fill($("k-held"), rows);
    const accepted = await api("GET", "/api/v1/parcels?state=accepted&limit=1000");
    const damaged = accepted.parcels.filter((p) => p.condition === "damaged");
    fill($("k-damaged"), damaged.map((p) => parcelRow(p, p.note || "")));
  } catch (err) {
    note(err.message, false);
  }
}

registerTab("parcels", { enter: loadParcels });
registerTab("exceptions", { enter: loadExceptions });

const changed = () => {
  if (current() !== "k-console") return;
  if (currentTab() === "parcels") loadParcels();
  if (currentTab() === "exceptions") loadExceptions();
  refreshOverdue();
};
["parcel", "held", "lagged"].forEach((type) => subscribe(type, changed));
