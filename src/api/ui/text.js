// The screen's language and its words: t("key", {vars}) from strings.js.

import { STRINGS } from "./strings.js";

let lang = localStorage.getItem("yizhan.lang") === "en" ? "en" : "zh-CN";
const changed = [];

export const language = () => lang;

export function t(key, vars) {
  let s = (STRINGS[lang] && STRINGS[lang][key]) || STRINGS["zh-CN"][key] || key;
  for (const k in vars || {}) s = s.replace("{" + k + "}", vars[k]);
  return s;
}

export const has = (key) => Boolean(STRINGS[lang][key]);

// Words the daemon sent in both languages ({zh, en}), e.g. why a scan was
// refused.
export const pick = (message) => (message ? (lang === "en" ? message.en : message.zh) : "");

// Screens that draw text themselves redraw when the language changes.
export const onLanguage = (fn) => changed.push(fn);

export function applyLanguage() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-t]").forEach((el) => {
    el.textContent = t(el.dataset.t);
  });
  document.querySelectorAll("[data-tp]").forEach((el) => {
    el.placeholder = t(el.dataset.tp);
  });
  changed.forEach((fn) => fn());
}

export function switchLanguage() {
  lang = lang === "en" ? "zh-CN" : "en";
  localStorage.setItem("yizhan.lang", lang);
  applyLanguage();
}

export function age(s) {
  if (s < 60) return t("age.s", { n: s });
  if (s < 3600) return t("age.m", { n: Math.floor(s / 60) });
  if (s < 86400) return t("age.h", { n: Math.floor(s / 3600) });
  return t("age.d", { n: Math.floor(s / 86400) });
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString(lang);
}
