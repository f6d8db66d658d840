// The console's count of parcels past their pickup time.

import { $ } from "./dom.js";
import { api, session } from "./api.js";
import { t } from "./text.js";

export async function refreshOverdue() {
  if (!session.token) return;
  try {
    let n = 0;
    for (const s of ["dropped", "accepted", "held"]) {
      const r = await api("GET", "/api/v1/parcels?state=" + s + "&limit=1000");
      n += r.parcels.filter((p) => p.overdue).length;
    }
    $("k-overdue").hidden = n === 0;
    $("k-overdue").textContent = t("k.overdue.count", { n });
  } catch (e) {
    /* shown elsewhere */
  }
}
