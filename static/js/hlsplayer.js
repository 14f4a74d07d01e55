// hls.js as the watch page uses it, loaded only when HLS is needed (WebRTC viewers never wait for
// it). LIVE is what bench/hls_latency.py measures; see docs/recorder.md, "Latency behind live".
export const loadHls = () => import("/static/node_modules/hls.js/dist/hls.mjs").then((module) => module.default);

export const LIVE = Object.freeze({
  lowLatencyMode: true, // aim at the playlist's PART-HOLD-BACK, load parts as they appear
  // Catch up, at up to 1.5x, after starting behind the target (a start is at a keyframe) or
  // after a stall; at 1 (the default) a player that fell behind stays behind.
  maxLiveSyncPlaybackRate: 1.5,
  backBufferLength: 30,
});

export const REPLAY = Object.freeze({
  lowLatencyMode: false,
  backBufferLength: Infinity,
});

// A rewind never goes closer than this to the oldest segment, which may leave the window next.
const WINDOW_MARGIN = 2;

/** hls.js playing `url` in `video`: live at its target latency, or `behind` seconds behind the
 * live edge (within the DVR window); `config` adds to LIVE or REPLAY. */
export function createHls(Hls, url, video, { live, behind = 0, ...config }) {
  const hls = new Hls({ ...(live ? LIVE : REPLAY), ...config });
  if (behind) {
    // From a master playlist hls.js loads a level only once it loads: let it start at the live
    // edge, and move it back as soon as the level says where the edge is.
    hls.once(Hls.Events.LEVEL_LOADED, (_event, { details }) => {
      const oldest = details.fragments[0].start + WINDOW_MARGIN;
      hls.stopLoad();
      hls.startLoad(Math.max(oldest, details.edge - behind));
    });
  }
  hls.loadSource(url);
  hls.attachMedia(video);
  return hls;
}

/** Move a live `video` by `seconds` (negative: back), within what the playlist still holds. */
export function seekWithin(video, seconds) {
  const range = video.seekable;
  if (!range.length) return;
  const oldest = range.start(0) + WINDOW_MARGIN;
  video.currentTime = Math.min(range.end(range.length - 1), Math.max(oldest, video.currentTime + seconds));
}
