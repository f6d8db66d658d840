// The daemon's API: JSON in and out, the clerk's session token, and the
// one place that turns an API error into words for the screen.

import { $ } from "./dom.js";
import { t, has } from "./text.js";

// The clerk session lives in memory only.
export const session = { token: null, name: "" };
const ended = [];
export const onSessionEnded = (fn) => ended.push(fn);

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// What the screen says for an error answer: the screen's own words for the
// codes it knows, the server's message (in English, with the code for
// support) for the rest.
export function errorWords(code, message) {
  const key = "err." + code;
  return has(key) ? t(key) : message || t("err.generic");
}

// `anonymous`: a customer's request, never with the clerk's token.
export async function api(method, path, body, { anonymous = false } = {}) {
  const headers = {};
  const withToken = session.token && !anonymous;
  if (withToken) headers["Authorization"] = "Bearer " + session.token;
  let payload;
  if (body instanceof Blob) {
    payload = body;
    headers["Content-Type"] = body.type || "image/jpeg";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
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
  try {
    json = text ? JSON.parse(text) : null;
  } catch (e) {
    json = null;
  }
  if (!r.ok) {
    const err = (json && json.error) || {};
    if (r.status === 401 && withToken) ended.forEach((fn) => fn());
    throw new ApiError(r.status, err.code || "error", errorWords(err.code, err.message));
  }
  return json;
}
