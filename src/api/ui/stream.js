// The daemon's event stream (/api/v1/stream). A clerk's stream (with the
// session's token, since an EventSource sends no headers) carries parcel
// ids and state changes; the kiosk's without a session carries nothing
// identifying a parcel.

const handlers = {};
let source = null;

// fn(data) for each event of `type` (data: its JSON, or null).
export function subscribe(type, fn) {
  (handlers[type] = handlers[type] || []).push(fn);
  if (source) attach(type, fn);
}

function attach(type, fn) {
  source.addEventListener(type, (e) => {
    let data = null;
    try {
      data = e.data ? JSON.parse(e.data) : null;
    } catch (err) {
      return;
    }
    fn(data);
  });
}

// (Re)connects, with the clerk's token or without.
export function listen(token) {
  if (source) source.close();
  source = new EventSource("/api/v1/stream" + (token ? "?token=" + encodeURIComponent(token) : ""));
  // An EventSource reconnects by itself after an error.
  for (const type in handlers) handlers[type].forEach((fn) => attach(type, fn));
}
