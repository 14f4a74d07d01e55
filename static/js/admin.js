// Admin dashboard: shows with their media health, a show's charts, funnel and moderation, users.
import uPlot from "/static/node_modules/uplot/dist/uPlot.esm.js";
import { $, api, authForm, confirmAction, el, money, say, session } from "./common.js";

const status = $("#status");
const STAFF = new Set(["admin", "moderator"]);
const REFRESH_MS = 3000;
const ROLES = ["viewer", "seller", "moderator", "admin"];
const showMatch = location.pathname.match(/^\/admin\/shows\/([^/]+)$/);
const showId = showMatch ? decodeURIComponent(showMatch[1]) : null;
const view = showId ? "show" : new URLSearchParams(location.search).has("users") ? "users" : "shows";
let timer = null;
let shown = null; // the show on the page, as last loaded

function every(fn) {
  clearInterval(timer);
  const run = () => fn().catch((error) => say(status, error.message, "error"));
  run();
  timer = setInterval(run, REFRESH_MS);
}

// Shows: status, viewers, ingest and recording, refreshed live.
async function refreshShows() {
  const filter = $("#filter").value;
  const streams = await api("GET", `/streams?limit=100${filter ? `&status=${filter}` : ""}`);
  const healths = await Promise.all(streams.map((s) => (["live", "reconnecting"].includes(s.status)
    ? api("GET", `/streams/${s.id}/health`).catch(() => null) : null)));
  $("#shows-table tbody").replaceChildren(...streams.map((stream, i) => showRow(stream, healths[i])));
  if (!streams.length) $("#shows-table tbody").append(el("tr", {}, el("td", { colspan: "7", class: "muted" }, "No shows.")));
  say(status, `Updated ${new Date().toLocaleTimeString()}.`);
}

function ingest(health) {
  const tracks = health?.media?.publisher?.tracks || [];
  const video = tracks.find((t) => t.kind === "video");
  const bitrate = tracks.reduce((sum, t) => sum + (t.bitrate_bps || 0), 0);
  const lost = tracks.reduce((sum, t) => sum + (t.packets_lost || 0), 0);
  const packets = tracks.reduce((sum, t) => sum + (t.packets || 0), 0);
  if (!tracks.length) return { text: "—", loss: "—" };
  const fps = video?.fps ? ` · ${Math.round(video.fps)} fps` : "";
  const size = video?.width ? ` · ${video.width}×${video.height}` : "";
  const share = packets ? ((100 * lost) / (packets + lost)).toFixed(1) : "0.0";
  return { text: `${(bitrate / 1e6).toFixed(2)} Mb/s${fps}${size}`, loss: `${lost} (${share} %)` };
}

function recording(stream) {
  if (!stream.record_stream) return "off";
  if (stream.vod_url) return "replay published";
  if (["live", "reconnecting"].includes(stream.status)) return "recording";
  return stream.status === "created" ? "will record" : "processing";
}

function showRow(stream, health) {
  const media = ingest(health);
  // data-label names each cell where a phone shows the row as a card (no header row there).
  return el("tr", { dataset: { streamId: stream.id, status: stream.status } },
    el("th", { scope: "row" }, el("a", { href: `/admin/shows/${encodeURIComponent(stream.id)}` }, stream.title)),
    el("td", { dataset: { label: "Seller" } }, stream.owner.display_name),
    el("td", { dataset: { label: "Status" } }, el("span", { class: `pill status-${stream.status}` }, stream.status)),
    el("td", { class: "viewers", dataset: { label: "WebRTC viewers" } }, health?.media ? String(health.media.viewers) : "—"),
    el("td", { dataset: { label: "Ingest" } }, media.text),
    el("td", { dataset: { label: "Loss" } }, media.loss),
    el("td", { dataset: { label: "Recording" } }, recording(stream)));
}

// One show: figures, charts, funnel, moderation, end.
const charts = {};

function chart(key, target, labels, colors, data) {
  if (!data[0].length) {
    target.replaceChildren(el("p", { class: "muted" }, "No per-minute figures yet."));
    delete charts[key];
    return;
  }
  if (charts[key]) {
    charts[key].setData(data);
    return;
  }
  target.replaceChildren();
  charts[key] = new uPlot({
    width: Math.max(280, target.clientWidth), height: 200,
    series: [{}, ...labels.map((label, i) => ({ label, stroke: colors[i], width: 2 }))],
    axes: [{ stroke: "#9ca3af" }, { stroke: "#9ca3af" }],
    // Ranged from the data: for a single point uPlot's own guess spans 1000 days (86400 / ms),
    // and a minute or two would fill the axis; show at least a few minutes.
    scales: { x: { time: true, range: minutesShown } },
  }, data, target);
}

function minutesShown(u) {
  const xs = u.data[0];
  const [min, max] = [xs[0], xs[xs.length - 1]];
  return max - min < 300 ? [min - 60, Math.max(max, min + 240) + 60] : [min, max];
}

async function refreshShow() {
  const [stream, analytics, health, chat, sanctions] = await Promise.all([
    api("GET", `/streams/${showId}`),
    api("GET", `/streams/${showId}/analytics`),
    api("GET", `/streams/${showId}/health`).catch(() => null),
    api("GET", `/streams/${showId}/chat?limit=100`),
    api("GET", `/streams/${showId}/sanctions`),
  ]);
  shown = stream;
  $("#show-title").textContent = stream.title;
  $("#show-status").textContent = stream.status;
  document.body.dataset.status = stream.status;
  $("#show-watch").href = `/watch/${encodeURIComponent(stream.id)}`;
  const running = ["live", "reconnecting"].includes(stream.status);
  $("#end-show").hidden = !running;
  const media = ingest(health);
  const split = analytics.viewers_by_playback;
  const { series } = analytics;
  const figures = [
    ["Seller", stream.owner.display_name],
    ["Viewers this minute", running && series.length ? series[series.length - 1].viewers : "—"],
    ["WebRTC sessions", health?.media ? health.media.viewers : "—"],
    ["Peak viewers", analytics.peak_viewers], ["Unique viewers", analytics.unique_viewers],
    ["WebRTC / HLS", `${split.webrtc} / ${split.hls}`],
    ["Reactions", analytics.total_likes], ["Chat lines", analytics.chat_messages_count],
    ["Average watch", `${Math.round(analytics.average_watch_time)} s`],
    ["Ingest", media.text], ["Loss", media.loss], ["Recording", recording(stream)],
  ];
  $("#show-figures").replaceChildren(...figures.map(([k, v]) => el("div", { dataset: { figure: k } }, el("dt", {}, k), el("dd", {}, String(v)))));

  const xs = series.map((p) => Date.parse(p.minute) / 1000);
  const col = (name) => series.map((p) => p[name]);
  chart("viewers", $("#chart-viewers"), ["Viewers", "WebRTC", "HLS"], ["#2563eb", "#16a34a", "#d97706"],
    [xs, col("viewers"), col("webrtc_viewers"), col("hls_viewers")]);
  chart("engagement", $("#chart-engagement"), ["Reactions", "Chat", "Clicks", "Orders"],
    ["#db2777", "#7c3aed", "#0891b2", "#ea580c"], [xs, col("likes"), col("chat_messages"), col("clicks"), col("orders")]);

  const cell = (label, value) => el("td", { dataset: { label } }, value);
  $("#funnel tbody").replaceChildren(...analytics.products.map((p) => el("tr", { dataset: { productId: p.product_id } },
    el("th", { scope: "row" }, p.title),
    cell("Impressions", String(p.impressions)), cell("Clicks", String(p.clicks)),
    cell("Questions", String(p.inquiries)), cell("Orders", String(p.orders)),
    cell("Paid", String(p.paid)), cell("Revenue", money(p.revenue_cents)))));
  if (!analytics.products.length) $("#funnel tbody").append(el("tr", {}, el("td", { colspan: "7", class: "muted" }, "No products in this show.")));

  renderChat(chat);
  renderSanctions(sanctions);
}

const SANCTIONED = { mute: "muted", ban: "banned" };

/**
 * Lists redrawn every 3 s are replaced only when what they show changed: a button swapped for
 * its copy between press and release never gets the click.
 */
function redraw(list, key, nodes) {
  if (list.dataset.shown === key) return;
  list.dataset.shown = key;
  list.replaceChildren(...nodes());
}

function renderSanctions(sanctions) {
  // Lifting gives back what was taken: no confirmation.
  const key = sanctions.map((s) => `${s.user_id}:${s.kind}`).join(",") || "none";
  redraw($("#sanctions"), key, () => sanctions.map((s) => el("li", { dataset: { userId: s.user_id, kind: s.kind } },
    el("span", { class: "grow" }, el("strong", {}, s.user.display_name), " ", el("span", { class: "pill" }, SANCTIONED[s.kind])),
    el("button", {
      type: "button", class: "small secondary", "aria-label": `Lift ${s.kind} for ${s.user.display_name}`,
      onclick: () => act(`Lift ${s.kind} for ${s.user.display_name}`, "DELETE", `/streams/${showId}/sanctions/${s.user_id}/${s.kind}`),
    }, `Lift ${s.kind}`))).concat(sanctions.length ? [] : [el("li", { class: "muted" }, "Nobody is muted or banned.")]));
}

/** A chat line quoted in a question, cut short so the dialog stays one thought. */
function quote(text) {
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

function renderChat(messages) {
  redraw($("#admin-chat"), messages.map((m) => m.id).join(",") || "none", () => messages.map((m) => {
    const name = m.user.display_name;
    const button = (label, attrs) => el("button", { type: "button", class: "small", "aria-label": `${label} ${name}`, ...attrs }, label);
    return el("li", { id: `m-${m.id}` },
      el("strong", {}, name), " ", el("span", { class: "text" }, m.text),
      el("span", { class: "actions" },
        button("Delete", {
          class: "small secondary", "aria-label": `Delete ${name}'s message`,
          onclick: () => confirmed(`Delete ${name}'s message “${quote(m.text)}” for everyone?`, "Delete",
            () => act(`Delete ${name}'s message`, "DELETE", `/streams/${showId}/chat/${m.id}`)),
        }),
        // Muting is undone with Lift and takes nothing away: no confirmation.
        button("Mute", { class: "small secondary", onclick: () => act(`Mute ${name}`, "PUT", `/streams/${showId}/sanctions/${m.user.id}/mute`) }),
        button("Ban", {
          class: "small danger",
          onclick: () => confirmed(`Ban ${name} from this show? They stop watching and their messages disappear.`, "Ban",
            () => act(`Ban ${name}`, "PUT", `/streams/${showId}/sanctions/${m.user.id}/ban`)),
        })));
  }).concat(messages.length ? [] : [el("li", { class: "muted" }, "No chat yet.")]));
}

/** A destructive action runs only once the moderator confirms it in the dialog. */
async function confirmed(question, verb, action) {
  if (await confirmAction(question, verb)) await action();
  else say(status, `${verb}: cancelled, nothing changed.`);
}

async function act(label, method, path, body) {
  try {
    await api(method, path, body);
    say(status, `${label}: done.`);
    await refreshShow();
  } catch (error) {
    say(status, `${label}: ${error.message}`, "error");
  }
}

$("#slow-form").addEventListener("submit", (event) => {
  event.preventDefault();
  act("Slow mode", "PUT", `/streams/${showId}/slow-mode`, { seconds: Number(event.target.seconds.value) });
});
$("#end-show").addEventListener("click", () => confirmed(`End “${shown?.title ?? "this show"}” for all viewers?`, "End show",
  () => act("End show", "POST", `/streams/${showId}/end`)));

// Users and roles.
let offset = 0;
async function loadUsers() {
  const page = await api("GET", `/users?limit=100&offset=${offset}`);
  offset += page.length;
  $("#more-users").hidden = page.length < 100;
  const me = session.user;
  $("#users-body").append(...page.map((user) => {
    const select = el("select", {
      "aria-label": `Role of ${user.display_name}`,
      disabled: me.role !== "admin" || user.id === me.id,
      onchange: async (event) => {
        try {
          await api("PATCH", `/users/${user.id}`, { role: event.target.value });
          say(status, `${user.display_name} is now ${event.target.value}.`);
        } catch (error) {
          say(status, error.message, "error");
          event.target.value = user.role;
        }
      },
    }, ...ROLES.map((role) => el("option", { value: role, selected: role === user.role }, role)));
    // data-label names each cell where a phone shows the row as a card (no header row there).
    return el("tr", { dataset: { userId: user.id } }, el("th", { scope: "row" }, user.display_name),
      el("td", { dataset: { label: "Email" } }, user.email), el("td", { class: "role", dataset: { label: "Role" } }, select));
  }));
}
$("#more-users").addEventListener("click", () => loadUsers().catch((e) => say(status, e.message, "error")));

function signedIn(user) {
  if (!STAFF.has(user.role)) {
    $("#auth").hidden = false;
    say($("#auth-status"), "Only admins and moderators can use the dashboard.", "error");
    return;
  }
  $("#auth").hidden = true;
  $("#nav").hidden = false;
  $(`#nav a[href="${view === "users" ? "/admin?users" : "/admin"}"]`).setAttribute("aria-current", "page");
  $(`#${view}`).hidden = false;
  if (view === "shows") every(refreshShows);
  else if (view === "show") every(refreshShow);
  else loadUsers().catch((e) => say(status, e.message, "error"));
}

$("#filter").addEventListener("change", () => every(refreshShows));
$("#sign-out").addEventListener("click", () => {
  session.clear();
  location.href = "/admin";
});
authForm($("#auth-form"), $("#auth-status"), signedIn);
if (session.token) {
  api("GET", "/me").then((user) => { session.save({ access_token: session.token, user }); signedIn(user); })
    .catch(() => { $("#auth").hidden = false; });
} else {
  $("#auth").hidden = false;
}
