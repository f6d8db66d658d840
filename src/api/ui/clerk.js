// The clerk's session: log in with id and PIN, log out, and back to the
// login screen when the daemon says the session ended.

import { $, on, onSubmit } from "./dom.js";
import { api, session, onSessionEnded } from "./api.js";
import { t } from "./text.js";
import { stopCamera } from "./camera.js";
import { show, selectTab } from "./nav.js";
import { listen } from "./stream.js";
import { startOver } from "./customer.js";
import { resetCheckin } from "./checkin.js";
import { loadCarriers } from "./handover.js";
import { refreshOverdue } from "./overdue.js";
import { refreshPools } from "./pools.js";

on("c-to-clerk", "click", () => {
  $("k-login-err").textContent = "";
  show("k-login");
});
on("k-login-back", "click", startOver);

onSubmit("k-login-form", async () => {
  $("k-login-err").textContent = "";
  try {
    const body = { clerk_id: $("k-id").value.trim(), pin: $("k-pin").value };
    const r = await api("POST", "/api/v1/sessions", body, { anonymous: true });
    session.token = r.token;
    session.name = r.name;
    listen(session.token);
    $("k-pin").value = "";
    $("k-who").textContent = r.name;
    show("k-console");
    selectTab("checkin");
    resetCheckin();
    loadCarriers();
    refreshOverdue();
    refreshPools();
  } catch (err) {
    $("k-pin").value = "";
    $("k-login-err").textContent = err.code === "too_many_attempts" ? t("k.login.locked") + " (" + err.message + ")" : t("k.login.wrong");
  }
});

function forget() {
  session.token = null;
  session.name = "";
  listen(null);
  stopCamera();
}

onSessionEnded(() => {
  forget();
  $("k-login-err").textContent = t("k.login.expired");
  show("k-login");
});

on("k-logout", "click", async () => {
  try {
    await api("DELETE", "/api/v1/sessions/current");
  } catch (e) {
    /* gone already */
  }
  forget();
  startOver();
});
