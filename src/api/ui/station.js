// What the daemon told the screen about this kiosk: its settings
// (GET /api/v1/kiosk) and its own devices (GET /api/v1/devices), the
// latter kept current by the stream.

export const kiosk = { min_photos: 1, kiosk_idle_s: 60, station_name: "", clock_trusted: true };
export const hw = { devices: {}, self_scanners: 0, clerk_scanners: 0, camera: false, printer: false };
