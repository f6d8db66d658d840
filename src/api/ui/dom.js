// The few DOM helpers every screen uses. Text goes in with textContent and
// rows come from <template>s in index.html: the screen never parses HTML
// it built from strings, so nothing a server or a customer typed can
// become markup.

export const $ = (id) => document.getElementById(id);

// The one way the screens bind events: on("id" or element, "event", fn).
export function on(target, event, handler, options) {
  (typeof target === "string" ? $(target) : target).addEventListener(event, handler, options);
}

// A form's submit, without the page reload.
export function onSubmit(id, handler) {
  on(id, "submit", (e) => {
    e.preventDefault();
    handler(e);
  });
}

// A copy of <template id="tpl-…">'s one element. `fields` fills the
// elements marked data-f="name" with text.
export function clone(name, fields) {
  const el = $("tpl-" + name).content.firstElementChild.cloneNode(true);
  for (const [field, text] of Object.entries(fields || {})) put(el, field, text);
  return el;
}

// The text of the element marked data-f="field" (or of `el` itself).
export function put(el, field, text) {
  const target = el.dataset.f === field ? el : el.querySelector('[data-f="' + field + '"]');
  target.textContent = text == null ? "" : String(text);
  return target;
}

// A line of text in a list (an empty list says why it is empty).
export function line(tag, text, className) {
  const el = document.createElement(tag);
  el.textContent = text;
  if (className) el.className = className;
  return el;
}

// A message line that is either good news or a problem.
export function say(id, text, ok) {
  const el = $(id);
  el.textContent = text;
  el.className = "msg " + (ok ? "ok" : "bad");
}
