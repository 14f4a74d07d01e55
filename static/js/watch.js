// Viewer: WebRTC (WHEP) first, HLS when WebRTC fails or ?hls is asked, the replay after the show.
import Hls from "/static/node_modules/hls.js/dist/hls.mjs";
import { play } from "./webrtc.js";

const streamId = decodeURIComponent(location.pathname.split("/").pop());
const video = document.getElementById("player");
const status = document.getElementById("status");
const wantsHls = new URLSearchParams(location.search).has("hls");
const FINISHED = new Set(["ended", "interrupted"]);

function show(text, mode) {
  status.textContent = text;
  if (mode) document.body.dataset.mode = mode;
}

function playHls(url, { live }) {
  window.shopcastPlayer = { mode: "hls", url };
  if (Hls.isSupported()) {
    const hls = new Hls({ lowLatencyMode: live, backBufferLength: live ? 30 : Infinity });
    hls.loadSource(url);
    hls.attachMedia(video);
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (data.fatal) show(`Playback error: ${data.details}`);
    });
    window.shopcastPlayer.hls = hls;
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url;
  } else {
    show("This browser can play neither WebRTC nor HLS.");
    return;
  }
  video.play().catch(() => {});
  show(live ? "Live (HLS)." : "Replay.", live ? "hls" : "replay");
}

async function playWebRtc(stream) {
  try {
    const session = await play(`${location.origin}/whep/${encodeURIComponent(streamId)}`, video);
    window.shopcastPlayer = { mode: "webrtc", ...session };
    session.pc.addEventListener("connectionstatechange", () => {
      document.body.dataset.connection = session.pc.connectionState;
      if (session.pc.connectionState === "failed") playHls(stream.hls_url, { live: true });
    });
    show("Live.", "webrtc");
  } catch (error) {
    if (error.status === 409 && error.retryAfter) {
      show("The show has not started yet…");
      setTimeout(start, error.retryAfter * 1000);
    } else {
      playHls(stream.hls_url, { live: true });
    }
  }
}

async function start() {
  const response = await fetch(`/api/v1/streams/${encodeURIComponent(streamId)}`);
  if (!response.ok) {
    show(response.status === 404 ? "No such show." : `Could not load the show (${response.status}).`);
    return;
  }
  const stream = await response.json();
  document.getElementById("title").textContent = stream.title;
  if (FINISHED.has(stream.status)) {
    if (stream.vod_url) playHls(stream.vod_url, { live: false });
    else show("The show has ended; its replay is not ready yet.", "ended");
  } else if (wantsHls || !window.RTCPeerConnection) {
    playHls(stream.hls_url, { live: true });
  } else {
    await playWebRtc(stream);
  }
}

start();
