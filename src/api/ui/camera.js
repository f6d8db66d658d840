// The browser's camera (getUserMedia), shared by the screens that use it.

import { $ } from "./dom.js";

let stream = null;

export const cameraOn = () => stream !== null;

export async function startCamera(video) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw new Error("no camera API");
  if (!stream) {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1600 }, facingMode: "environment" },
      audio: false,
    });
  }
  video.srcObject = stream;
  await video.play().catch(() => {});
}

export function stopCamera() {
  if (stream) {
    stream.getTracks().forEach((tr) => tr.stop());
    stream = null;
  }
}

// How long a snap waits for a camera that is still starting.
const FIRST_FRAME_MS = 3000;

// Resolves once the video has a frame, or rejects after `ms`: a clerk who
// presses Enter while the camera is still starting gets the photo a moment
// later, not an error.
function frameReady(video, ms) {
  const ready = () => video.videoWidth > 0 && video.videoHeight > 0;
  if (ready()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const events = ["loadedmetadata", "loadeddata", "resize", "playing"];
    const finish = (ok) => {
      clearTimeout(timer);
      events.forEach((e) => video.removeEventListener(e, check));
      ok ? resolve() : reject(new Error("camera not ready"));
    };
    const check = () => ready() && finish(true);
    const timer = setTimeout(() => finish(ready()), ms);
    events.forEach((e) => video.addEventListener(e, check));
  });
}

// The video's current frame as a JPEG.
export async function snap(video) {
  await frameReady(video, FIRST_FRAME_MS);
  return new Promise((resolve, reject) => {
    const w = video.videoWidth;
    const h = video.videoHeight;
    const c = $("snap");
    c.width = w;
    c.height = h;
    c.getContext("2d").drawImage(video, 0, 0, w, h);
    c.toBlob((b) => (b ? resolve(b) : reject(new Error("no image"))), "image/jpeg", 0.88);
  });
}
