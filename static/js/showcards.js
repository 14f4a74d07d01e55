// Show cards of the home and seller pages: poster, what is on (live and watching, when, or a
// replay), title and seller. Text from users is always set as text.
import { api, el } from "./common.js";

const when = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", hour: "numeric", minute: "2-digit" });

function label(stream) {
  if (stream.viewers !== null && stream.viewers !== undefined) {
    return el("span", { class: "badge live" }, `LIVE · ${stream.viewers} watching`);
  }
  if (stream.status === "created" && stream.scheduled_at) {
    return el("span", { class: "badge" }, when.format(new Date(stream.scheduled_at)));
  }
  return el("span", { class: "badge" }, "Replay");
}

function poster(stream) {
  const frame = el("div", { class: "poster" }, label(stream));
  if (stream.poster_url) {
    const image = el("img", { src: stream.poster_url, alt: "", loading: "lazy" });
    // A live show's poster exists once its first keyframe is recorded.
    image.addEventListener("error", () => image.remove(), { once: true });
    frame.prepend(image);
  }
  return frame;
}

/** One show as a card linking to its watch page (and its seller's page, unless `seller`). */
export function showCard(stream, { seller = true } = {}) {
  const about = stream.estimated_duration ? `about ${stream.estimated_duration} min` : null;
  const by = seller
    ? el("p", { class: "by" }, el("a", { href: `/s/${encodeURIComponent(stream.owner.handle)}` }, stream.owner.display_name), about && el("span", { class: "muted" }, ` · ${about}`))
    : el("p", { class: "by muted" }, about);
  return el(
    "li",
    { class: "show-tile" },
    el("a", { class: "tile-link", href: `/watch/${encodeURIComponent(stream.id)}` }, poster(stream), el("span", { class: "tile-title" }, stream.title)),
    by,
  );
}

/** Fills `list` with a section's shows (`params` of GET /streams); `empty` when there are none. */
export async function fillSection(list, params, empty, options) {
  const streams = await api("GET", `/streams?${new URLSearchParams({ limit: "24", ...params })}`);
  list.replaceChildren(...streams.map((stream) => showCard(stream, options)));
  if (!streams.length) list.replaceChildren(el("li", { class: "muted empty" }, empty));
  return streams;
}
