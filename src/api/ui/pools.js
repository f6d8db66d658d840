// The e-waybill pools (SPEC §2.5): a banner on the console when a
// carrier's pool runs low, and which carriers can give a parcel without a
// label its number.

import { $ } from "./dom.js";
import { api, session } from "./api.js";
import { t } from "./text.js";

let levels = [];

// Carriers with a free number, most numbers first.
export const poolCarriers = () => levels.filter((l) => l.remaining > 0).map((l) => l.carrier);

export async function refreshPools() {
  if (!session.token) return;
  try {
    levels = (await api("GET", "/api/v1/waybill-pools")).pools;
  } catch (e) {
    return;
  }
  levels.sort((a, b) => b.remaining - a.remaining);
  const low = levels.filter((l) => l.low);
  $("k-pools").hidden = low.length === 0;
  $("k-pools").textContent = t("k.pools.low", { list: low.map((l) => t("k.pools.left", { c: l.carrier, n: l.remaining })).join(" · ") });
}
