// Minimal broadcaster: camera and microphone to the stream's WHIP endpoint.
import { publish } from "./webrtc.js";

const form = document.getElementById("live-form");
const status = document.getElementById("status");
const preview = document.getElementById("preview");
const stopButton = document.getElementById("stop");
const params = new URLSearchParams(location.search);
document.getElementById("stream-id").value = params.get("stream") || "";
document.getElementById("publish-token").value = params.get("token") || "";

let live = null;

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const streamId = form.stream.value.trim();
  status.textContent = "Starting the camera…";
  try {
    const media = await navigator.mediaDevices.getUserMedia({
      video: { width: 1280, height: 720, frameRate: 30 }, audio: true,
    });
    preview.srcObject = media;
    status.textContent = "Connecting…";
    live = await publish(`${location.origin}/whip/${encodeURIComponent(streamId)}`, form.token.value.trim(), media);
    live.pc.addEventListener("connectionstatechange", () => {
      status.textContent = `Connection: ${live.pc.connectionState}`;
      document.body.dataset.connection = live.pc.connectionState;
    });
    status.textContent = "Live.";
    stopButton.hidden = false;
  } catch (error) {
    status.textContent = `Could not go live: ${error.message}`;
  }
});

stopButton.addEventListener("click", async () => {
  if (live) await live.stop();
  live = null;
  stopButton.hidden = true;
  status.textContent = "Stopped.";
});
