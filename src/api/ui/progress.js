// "Check my return": what the station and the platform know of a return.

import { $, on, onSubmit, clone, line } from "./dom.js";
import { api } from "./api.js";
import { t, when } from "./text.js";
import { show } from "./nav.js";
import { startOver } from "./customer.js";

on("c-to-progress", "click", () => show("c-progress"));
on("c-progress-back", "click", startOver);

onSubmit("c-progress-form", async () => {
  const code = $("c-progress-code").value.trim();
  if (!code) return;
  const out = $("c-progress-out");
  try {
    const path = "/api/v1/returns/" + encodeURIComponent(code) + "/progress";
    const p = await api("GET", path, undefined, { anonymous: true });
    const list = document.createElement("dl");
    const row = (term, text, mono) => {
      const r = clone("progress-row", { term, text });
      if (mono) r.querySelector("dd").classList.add("mono");
      list.append(r);
    };
    row(t("c.receipt.rn"), p.return_no, true);
    if (p.authorization) row("", t("progress." + p.authorization));
    if (p.parcel) row(t("progress.parcel"), t("progress.state." + p.parcel.state) + " · " + when(p.parcel.dropped_off_at || p.parcel.updated_at));
    if (p.platform) row(t("progress.platform"), p.platform.status + " · " + when(p.platform.at));
    out.replaceChildren(list);
  } catch (err) {
    out.replaceChildren(line("p", err.code === "unknown_return" ? t("progress.none") : err.message, "error"));
  }
});
