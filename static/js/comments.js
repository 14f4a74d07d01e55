// Replay comments: what viewers said about a moment of the replay, as a list and as marks on a
// strip of the replay's timeline; tapping either plays from that moment. Text is set as text.
import { $, api, el, say } from "./common.js";

const clock = (seconds) => {
  const whole = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(whole / 3600), minutes = Math.floor((whole % 3600) / 60), rest = whole % 60;
  const mm = hours ? String(minutes).padStart(2, "0") : String(minutes);
  return `${hours ? `${hours}:` : ""}${mm}:${String(rest).padStart(2, "0")}`;
};

/** Shows the replay's comments beside `video` and lets a signed-in viewer add one at the moment
 * the video shows; `signIn()` is called for a signed-out viewer (resolves once signed in). */
export async function replayComments(streamId, video, { signedIn, signIn }) {
  const section = $("#comments");
  const list = $("#comment-list");
  const track = $("#comment-track");
  const form = $("#comment-form");
  const note = $("#comment-status");
  let comments = [];
  const seek = (at) => {
    video.currentTime = at;
    video.play().catch(() => {});
  };
  const render = () => {
    list.replaceChildren(...comments.map((c) => el("li", {},
      el("button", { type: "button", class: "at", "aria-label": `Play from ${clock(c.at_seconds)}`, onclick: () => seek(c.at_seconds) }, clock(c.at_seconds)),
      el("strong", {}, c.user.display_name), el("span", { class: "text" }, c.text))));
    if (!comments.length) list.replaceChildren(el("li", { class: "muted" }, "No comments yet: be the first."));
    const length = video.duration;
    track.replaceChildren(...(Number.isFinite(length) && length > 0 ? comments.map((c) => el("button", {
      type: "button", class: "mark", style: `left: ${Math.min(100, (c.at_seconds / length) * 100)}%`,
      "aria-label": `${c.user.display_name} at ${clock(c.at_seconds)}: ${c.text}`, onclick: () => seek(c.at_seconds),
    })) : []));
  };
  const placeholder = () => {
    form.text.placeholder = `Comment at ${clock(video.currentTime || 0)}`;
  };
  try {
    comments = await api("GET", `/streams/${encodeURIComponent(streamId)}/comments`);
  } catch {
    return; // comments off, or not for this viewer: the section stays hidden
  }
  section.hidden = false;
  render();
  placeholder();
  video.addEventListener("durationchange", render);
  video.addEventListener("timeupdate", placeholder);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!signedIn()) {
      await signIn();
      return;
    }
    const text = form.text.value.trim();
    if (!text) return;
    try {
      const made = await api("POST", `/streams/${encodeURIComponent(streamId)}/comments`, { at_seconds: video.currentTime || 0, text });
      comments = [...comments, made].sort((a, b) => a.at_seconds - b.at_seconds);
      form.text.value = "";
      say(note, `Posted at ${clock(made.at_seconds)}.`);
      render();
    } catch (error) {
      say(note, error.message, "error");
    }
  });
}
