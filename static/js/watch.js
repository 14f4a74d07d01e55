// Minimal viewer: WHEP into a <video>, retrying while the show has not started.
import { play } from "./webrtc.js";

const streamId = decodeURIComponent(location.pathname.split("/").pop());
const video = document.getElementById("player");
const status = document.getElementById("status");

async function start() {
  try {
    const session = await play(`${location.origin}/whep/${encodeURIComponent(streamId)}`, video);
    window.shopcastPlayer = session;
    session.pc.addEventListener("connectionstatechange", () => {
      document.body.dataset.connection = session.pc.connectionState;
    });
    status.textContent = "Live.";
  } catch (error) {
    if (error.status === 409 && error.retryAfter) {
      status.textContent = "The show has not started yet…";
      setTimeout(start, error.retryAfter * 1000);
    } else {
      status.textContent = `Could not play: ${error.message}`;
    }
  }
}

fetch(`/api/v1/streams/${encodeURIComponent(streamId)}`)
  .then((r) => (r.ok ? r.json() : null))
  .then((stream) => { if (stream) document.getElementById("title").textContent = stream.title; });
start();
