// The seller's planned shows in the studio: each with its time, its page, Go live, Move (a new
// time: its followers and whoever asked to be reminded are told) and Cancel (told too).
import { $, api, confirmAction, el, say } from "./common.js";

function local(iso) {
  return new Date(iso).toLocaleString([], { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}

// The value a datetime-local input takes for ``iso``, in this device's zone.
function inputValue(iso) {
  const at = new Date(iso);
  return new Date(at.getTime() - at.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function row(stream, { onGoLive, reload }) {
  const line = $("#planned-status");
  const when = el("input", { type: "datetime-local", name: "scheduled_at", value: inputValue(stream.scheduled_at), "aria-label": `New time of ${stream.title}` });
  const move = el("form", { class: "row move", hidden: "" }, when, el("button", { type: "submit", class: "small" }, "Save the new time"));
  move.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("PATCH", `/streams/${stream.id}/settings`, { scheduled_at: new Date(when.value).toISOString() });
      say(line, `"${stream.title}" moved: its followers and reminders are told.`);
      await reload();
    } catch (error) {
      say(line, error.message, "error");
    }
  });
  const moveButton = el("button", { type: "button", class: "secondary small" }, "Move");
  moveButton.addEventListener("click", () => { move.hidden = !move.hidden; });
  const cancel = el("button", { type: "button", class: "secondary small" }, "Cancel show");
  cancel.addEventListener("click", async () => {
    if (!await confirmAction(`Cancel "${stream.title}"? Its followers and reminders are told.`, "Cancel the show")) return;
    try {
      await api("POST", `/streams/${stream.id}/cancel`);
      say(line, `"${stream.title}" is cancelled.`);
      await reload();
    } catch (error) {
      say(line, error.message, "error");
    }
  });
  const goLive = el("button", { type: "button", class: "small" }, "Go live now");
  goLive.addEventListener("click", () => onGoLive(stream));
  return el("li", { class: "planned-show", "data-stream-id": stream.id },
    el("p", {}, el("strong", {}, stream.title), ` · ${local(stream.scheduled_at)}`, " · ",
      el("a", { href: `/watch/${stream.id}` }, "its page")),
    el("div", { class: "row" }, goLive, moveButton, cancel),
    move);
}

/** Lists the signed-in seller's planned shows; ``onGoLive(stream)`` opens the camera for one. */
export async function plannedShows({ onGoLive }) {
  const reload = async () => {
    const mine = await api("GET", "/streams?mine=true&section=upcoming");
    $("#planned-list").replaceChildren(...mine.map((stream) => row(stream, { onGoLive, reload })));
    $("#planned").hidden = mine.length === 0;
  };
  await reload();
  return reload;
}
