// WHIP and WHEP clients for the browser: one offer, one answer, ICE gathered up front.

const ICE_GATHER_LIMIT_MS = 2000;
// Without STUN or TURN servers a peer has only host candidates, and they all come at once: the
// offer goes this long after the first one instead of waiting for gathering to complete.
const HOST_CANDIDATES_MS = 50;

function gathered(pc, hostOnly) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
    if (hostOnly) {
      pc.addEventListener("icecandidate", (event) => {
        if (event.candidate) setTimeout(resolve, HOST_CANDIDATES_MS);
      });
    }
    setTimeout(resolve, ICE_GATHER_LIMIT_MS);
  });
}

async function exchange(pc, url, token, hostOnly) {
  const candidates = gathered(pc, hostOnly);
  await pc.setLocalDescription(await pc.createOffer());
  await candidates;
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
  if (response.status !== 201) {
    const problem = await response.json().catch(() => ({}));
    const error = new Error(problem.message || `HTTP ${response.status}`);
    error.status = response.status;
    error.retryAfter = Number(response.headers.get("Retry-After") || 0);
    throw error;
  }
  const session = new URL(response.headers.get("Location"), url).href;
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  return session;
}

function preferH264(transceiver) {
  const codecs = RTCRtpSender.getCapabilities?.("video")?.codecs;
  if (!codecs || !transceiver.setCodecPreferences) return;
  const h264 = codecs.filter((c) => c.mimeType === "video/H264");
  transceiver.setCodecPreferences([...h264, ...codecs.filter((c) => c.mimeType !== "video/H264")]);
}

function iceConfig(servers) {
  return servers.map(({ urls, username, credential }) => ({
    urls, ...(username ? { username, credential } : {}),
  }));
}

// Simulcast: the encoder makes three layers (quarter, half and full resolution; lowest
// first) and the SFU forwards each viewer the one its link carries. The bit rates keep a
// 600 kbit/s viewer on the lowest layer and give a 2.5 Mbit/s one the top. A browser that
// cannot simulcast (or a camera too small for three layers) sends one layer as before.
export const LAYERS = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 200_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 700_000 },
  { rid: "f", maxBitrate: 2_000_000 },
];

function addVideo(pc, track, stream, simulcast) {
  const init = { direction: "sendonly", streams: [stream] };
  if (simulcast) {
    try {
      return pc.addTransceiver(track, { ...init, sendEncodings: LAYERS });
    } catch {
      // Not supported here: one layer.
    }
  }
  return pc.addTransceiver(track, init);
}

/** Publish a MediaStream over WHIP; returns {pc, session, stop()}. */
export async function publish(url, token, stream, iceServers = [], { simulcast = true } = {}) {
  const pc = new RTCPeerConnection({ iceServers: iceConfig(iceServers) });
  for (const track of stream.getTracks()) {
    if (track.kind === "video") {
      preferH264(addVideo(pc, track, stream, simulcast));
    } else {
      pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    }
  }
  const session = await exchange(pc, url, token, iceServers.length === 0);
  const stop = async () => {
    pc.close();
    await fetch(session, { method: "DELETE", headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
  };
  return { pc, session, stop };
}

/** The show's STUN and TURN servers, `{ice_servers, expires_in}`; none when they cannot be
 * had (host candidates still work, and the WHEP answer says whether the viewer may watch). */
export async function iceServersFor(streamId, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const url = `/api/v1/streams/${encodeURIComponent(streamId)}/ice-servers`;
  const response = await fetch(url, { headers }).catch(() => null);
  if (!response?.ok) return { ice_servers: [], expires_in: 0 };
  return response.json();
}

/** Ask for fresh TURN credentials before they expire and hand them to the peer connection,
 * so the ICE restarts and new allocations of a long show still authenticate. */
export function refreshIceServers(pc, load, expiresIn) {
  if (!expiresIn) return;
  const timer = setTimeout(async () => {
    if (pc.connectionState === "closed") return;
    const fresh = await load();
    if (fresh.ice_servers.length) {
      pc.setConfiguration({ ...pc.getConfiguration(), iceServers: iceConfig(fresh.ice_servers) });
    }
    refreshIceServers(pc, load, fresh.expires_in);
  }, Math.max(30, expiresIn * 0.8) * 1000);
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "closed") clearTimeout(timer);
  });
}

/** Play a stream over WHEP into a <video>; returns {pc, session, stop()}. */
export async function play(url, video, token, iceServers = []) {
  const pc = new RTCPeerConnection({ iceServers: iceConfig(iceServers) });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const media = new MediaStream();
  pc.addEventListener("track", (event) => {
    media.addTrack(event.track);
    video.srcObject = media;
  });
  const session = await exchange(pc, url, token, iceServers.length === 0);
  const stop = async () => {
    pc.close();
    await fetch(session, { method: "DELETE" }).catch(() => {});
  };
  return { pc, session, stop };
}
