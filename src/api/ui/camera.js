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

// The video's current frame as a JPEG.
export function snap(video) {
  return new Promise((resolve, reject) => {
    const w = video.videoWidth;
    const h = video.videoHeight;
    if (!w || !h) return reject(new Error("camera not ready"));
    const c = $("snap");
    c.width = w;
    c.height = h;
    c.getContext("2d").drawImage(video, 0, 0, w, h);
    c.toBlob((b) => (b ? resolve(b) : reject(new Error("no image"))), "image/jpeg", 0.88);
  });
}
