// A WebRTC viewer's reception, from RTCPeerConnection.getStats(): video that has stopped
// decoding while the connection is up and audio still arrives means the link carries audio only.
const FROZEN_MS = 2000;
const EVERY_MS = 500;

/** Frames decoded (video) and packets received (audio) in a getStats() report. */
function counters(report) {
  const totals = { frames: 0, packets: 0 };
  report.forEach((stat) => {
    if (stat.type !== "inbound-rtp") return;
    if (stat.kind === "video") totals.frames += stat.framesDecoded ?? 0;
    if (stat.kind === "audio") totals.packets += stat.packetsReceived ?? 0;
  });
  return totals;
}

/** Calls `onChange(true)` once `pc`'s video has decoded no frame for over 2 s while audio
 * packets keep arriving, and `onChange(false)` when that ends (frames again, no audio either,
 * or the connection is no longer up). Stops by itself when `pc` closes. */
export function watchReception(pc, onChange) {
  let last = null;
  let framesAt = performance.now();
  let audioOnly = false;
  const set = (now) => {
    if (now !== audioOnly) onChange((audioOnly = now));
  };
  const timer = setInterval(async () => {
    if (pc.connectionState === "closed") clearInterval(timer);
    if (pc.connectionState !== "connected") return set(false);
    const sample = counters(await pc.getStats());
    const now = performance.now();
    if (!last || sample.frames > last.frames) framesAt = now;
    const audioFlows = Boolean(last) && sample.packets > last.packets;
    last = sample;
    set(audioFlows && now - framesAt > FROZEN_MS);
  }, EVERY_MS);
}
