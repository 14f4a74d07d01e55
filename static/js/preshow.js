// Before a planned show starts: the countdown to its time, how long it should last, the products
// to come and "Remind me" (a notification on this device, an email, or the .ics calendar file).
// A cancelled show says so here and links to the seller's page.
import { $, api, el, money, say, session, thumbnail } from "./common.js";
import { BLOCKED, pushSupported, subscribeThisDevice } from "./follow.js";

const TICK_MS = 1000;
const state = { stream: null, reminder: null, signIn: null, timer: null };

function left(ms) {
  const minutes = Math.floor(ms / 60000);
  if (minutes >= 48 * 60) return `${Math.floor(minutes / 1440)} days`;
  if (minutes >= 60) return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  const seconds = Math.floor(ms / 1000) % 60;
  return `${minutes}:${String(seconds).padStart(2, "0")}`;
}

function tick() {
  const ms = Date.parse(state.stream.scheduled_at) - Date.now();
  $("#preshow-clock").textContent = ms > 0 ? left(ms) : "any minute";
  $("#preshow-kicker").textContent = ms > 0 ? "Live in" : "Starting";
}

function when(stream) {
  const at = new Date(stream.scheduled_at).toLocaleString([], {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  });
  return stream.estimated_duration ? `${at} · about ${stream.estimated_duration} min` : at;
}

function renderReminder() {
  const reminder = state.reminder;
  const button = $("#remind");
  button.textContent = reminder ? "✓ Reminder set" : "🔔 Remind me";
  button.setAttribute("aria-pressed", String(Boolean(reminder)));
  $("#remind-push").setAttribute("aria-pressed", String(Boolean(reminder?.push)));
  $("#remind-email").setAttribute("aria-pressed", String(Boolean(reminder?.email)));
  $("#remind-push").hidden = !pushSupported();
  $("#remind-off").hidden = !reminder;
  const channels = [reminder?.push && "a notification", reminder?.email && "an email"].filter(Boolean);
  say($("#remind-status"), channels.length ? `You'll get ${channels.join(" and ")} 15 minutes before.` : "");
}

async function loadReminder() {
  state.reminder = null;
  if (session.token) {
    try {
      state.reminder = await api("GET", `/streams/${encodeURIComponent(state.stream.id)}/reminder`);
    } catch (error) {
      if (error.status !== 404) throw error;
    }
  }
  renderReminder();
}

async function setReminder(channels) {
  const path = `/streams/${encodeURIComponent(state.stream.id)}/reminder`;
  const line = $("#remind-sheet-status");
  try {
    if (channels.push && !await subscribeThisDevice()) {
      say(line, BLOCKED, "error");
      return;
    }
    const current = state.reminder || { push: false, email: false };
    state.reminder = await api("PUT", path, { ...current, ...channels });
    renderReminder();
    say(line, "Reminder set.");
    $("#remind-sheet").close();
  } catch (error) {
    say(line, error.message, "error");
  }
}

async function forget() {
  await api("DELETE", `/streams/${encodeURIComponent(state.stream.id)}/reminder`);
  state.reminder = null;
  renderReminder();
  $("#remind-sheet").close();
}

function signedInThen(action) {
  return () => (session.token ? action() : state.signIn(action));
}

function renderLineup(items) {
  const list = $("#coming-list");
  list.replaceChildren(...items.map(({ product }) => el("li", { class: "card coming-card" },
    thumbnail(product),
    el("div", { class: "coming-text" },
      el("p", { class: "coming-name" }, product.title),
      el("p", { class: "price" }, money(product.price_cents, product.currency))))));
  $("#coming").hidden = items.length === 0;
}

/**
 * The pre-show for ``stream`` (planned: ``created`` with a ``scheduled_at``, or ``cancelled``).
 * ``signIn(then)`` opens the sign-in sheet. Returns ``lineup(items)``, for the products the
 * room lists, and ``leave()``, when the show goes live.
 */
export function preShow(stream, { signIn }) {
  state.stream = stream;
  state.signIn = signIn;
  document.body.dataset.preshow = stream.status;
  $("#preshow").hidden = false;
  if (stream.status === "cancelled") {
    $("#preshow-kicker").textContent = "Cancelled";
    $("#preshow-clock").textContent = "This show won't happen";
    $("#preshow-when").replaceChildren(el("a", { href: `/s/${encodeURIComponent(stream.owner.handle)}` }, `See ${stream.owner.display_name}'s other shows`));
    $("#remind").hidden = true;
    return { lineup() {}, leave() {}, refresh() {} };
  }
  $("#preshow-when").textContent = when(stream);
  $("#remind-calendar").href = `/api/v1/streams/${encodeURIComponent(stream.id)}/calendar.ics`;
  $("#remind").onclick = () => { say($("#remind-sheet-status"), ""); $("#remind-sheet").showModal(); };
  $("#remind-close").onclick = () => $("#remind-sheet").close();
  $("#remind-push").onclick = signedInThen(() => setReminder({ push: true }));
  $("#remind-email").onclick = signedInThen(() => setReminder({ email: true }));
  $("#remind-off").onclick = () => forget().catch((error) => say($("#remind-sheet-status"), error.message, "error"));
  tick();
  state.timer = setInterval(tick, TICK_MS);
  loadReminder().catch(() => {});
  return {
    lineup: renderLineup,
    leave() {
      clearInterval(state.timer);
      delete document.body.dataset.preshow;
      $("#preshow").hidden = true;
      $("#coming").hidden = true;
    },
    refresh: () => loadReminder().catch(() => {}),
  };
}
