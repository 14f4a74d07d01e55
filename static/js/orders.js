// My orders (/orders): the signed-in buyer's orders, newest first, each with where it stands and,
// while it is reserved, the hold's countdown and how to pay for it (the seller's checkout); kept
// up to date over Socket.IO (order:status, to the account's room). ?checkout=<session id> is the
// return from Stripe Checkout: it says the payment is being confirmed until its orders are paid.
// Text from users is only ever set with textContent.
import { $, api, authForm, connect, el, money, say, session } from "./common.js";
import { askDelivery, deliveryText, holdLine, orderTotal, payAction, payNote, statusText, tickHolds, trackLink } from "./purchase.js";

const PAGE = 20;
const POLL_MS = 4000; // while confirming a payment, should the socket miss the news
const POLLS = 30;
const DONE = new Set(["paid", "shipped"]);
const OPEN = new Set(["reserved", ...DONE]);
const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const state = {
  orders: [], more: false, socket: null, rows: new Map(), polls: 0, poll: null,
  checkout: new URLSearchParams(location.search).get("checkout"),
};
const status = $("#status");

function photo(order) {
  const src = order.product.image_url;
  return src
    ? el("img", { src, alt: "", class: "thumb" })
    : el("span", { class: "thumb placeholder", "aria-hidden": "true" }, "🛍");
}

function price(order) {
  const each = order.quantity > 1 ? ` (${order.quantity} × ${money(order.unit_price_cents, order.currency)})` : "";
  return el("p", { class: "prices" }, el("span", { class: "price" }, orderTotal(order)), each);
}

// Where it goes: an invoiced or Stripe order ships to the account's details, asked for here
// while it has none; the shop takes its own.
function shipsTo(order) {
  if (!OPEN.has(order.status)) return null; // cancelled or expired: it goes nowhere
  const to = deliveryText(order.delivery);
  if (to) return el("p", { class: "muted ships" }, `${order.status === "shipped" ? "Sent to" : "Ships to"} ${to}`);
  if (order.status !== "reserved" || order.checkout === "shop") return null;
  return el("div", { class: "ships" },
    el("p", { class: "muted" }, "No delivery address yet."),
    el("button", { type: "button", class: "secondary address", onclick: () => addDelivery() }, "Add delivery details"));
}

function row(order) {
  const reserved = order.status === "reserved";
  const result = el("p", { class: "result", role: "status" }, reserved ? payNote(order.checkout, order.product, order) : "");
  const actions = [reserved ? payAction(order, order.checkout, order.product, result) : null, trackLink(order)].filter(Boolean);
  return el("li", { id: `order-${order.id}`, class: "card order", dataset: { status: order.status } },
    photo(order),
    el("div", { class: "card-body" },
      el("strong", { class: "product-title" }, order.product.title),
      el("p", { class: "from" },
        el("a", { class: "show-link", href: `/watch/${encodeURIComponent(order.stream.id)}` }, order.stream.title),
        el("span", { class: "muted" }, `by ${order.seller.display_name}`)),
      price(order),
      el("p", { class: "state" },
        el("span", { class: `pill status-${order.status}` }, statusText(order)), " ",
        el("span", { class: "muted" }, when.format(new Date(order.created_at)))),
      reserved ? holdLine(order) : null,
      result,
      shipsTo(order)),
    actions.length ? el("div", { class: "card-actions" }, actions) : null);
}

// Rows are rebuilt only when their order changed, so a tap never lands on a replaced button.
function render() {
  const rows = new Map();
  const nodes = state.orders.map((order) => {
    const key = JSON.stringify(order);
    const old = state.rows.get(order.id);
    const kept = old?.key === key ? old : { key, node: row(order) };
    rows.set(order.id, kept);
    return kept.node;
  });
  state.rows = rows;
  const list = $("#orders");
  if (nodes.length !== list.children.length || nodes.some((node, i) => list.children[i] !== node)) list.replaceChildren(...nodes);
  $("#more").hidden = !state.more;
  say(status, state.orders.length ? "" : "No orders yet: tap Buy during a show and it shows here.");
  tickHolds();
}

async function load() {
  const limit = Math.max(PAGE, state.orders.length);
  try {
    const orders = await api("GET", `/me/orders?limit=${Math.min(limit, 100)}`);
    state.orders = orders;
    state.more = orders.length === limit;
    render();
    confirmPayment();
  } catch (error) {
    if (!session.token) return signedOut(); // the token expired: api() forgot it
    say(status, `Could not load your orders (${error.message}).`, "error");
  }
}

async function older() {
  $("#more").disabled = true;
  try {
    const orders = await api("GET", `/me/orders?limit=${PAGE}&offset=${state.orders.length}`);
    const known = new Set(state.orders.map((o) => o.id));
    state.orders.push(...orders.filter((o) => !known.has(o.id)));
    state.more = orders.length === PAGE;
    render();
  } catch (error) {
    say(status, error.message, "error");
  } finally {
    $("#more").disabled = false;
  }
}

// Back from Stripe Checkout: its webhook marks the orders paid a moment later.
function confirmPayment() {
  const banner = $("#checkout-banner");
  if (!state.checkout) return;
  banner.hidden = false;
  const paying = state.orders.filter((o) => o.checkout_session_id === state.checkout);
  if (paying.length && paying.every((o) => DONE.has(o.status))) {
    say(banner, paying.length > 1 ? "Payment confirmed: your orders are paid ✓" : "Payment confirmed: your order is paid ✓", "ok");
    state.checkout = null;
    clearTimeout(state.poll);
    history.replaceState(null, "", location.pathname); // a reload does not confirm it again
    return;
  }
  if (state.polls >= POLLS) {
    say(banner, "Payment received. Its confirmation is taking a while: this page updates by itself.");
    return;
  }
  say(banner, "Payment received — confirming…");
  clearTimeout(state.poll);
  if (session.token) {
    state.poll = setTimeout(() => { state.polls += 1; load(); }, POLL_MS);
  }
}

function listen() {
  state.socket?.disconnect();
  const socket = connect();
  state.socket = socket;
  let reconnect = false;
  socket.on("connect", () => {
    if (reconnect) load(); // news sent while the connection was down
    reconnect = true;
  });
  socket.on("order:status", (order) => {
    const known = state.orders.find((o) => o.id === order.id);
    if (!known) return load(); // a new order, bought on a watch page
    Object.assign(known, order);
    render();
    confirmPayment();
  });
}

function showAccount() {
  const user = session.user;
  $("#who").textContent = user?.display_name ?? "";
  $("#delivery-summary").textContent = deliveryText(user?.delivery) || "none yet";
}

async function addDelivery(reason = "Where should your orders go? The seller ships to this address.") {
  const user = await askDelivery(reason);
  if (!user) return;
  showAccount();
  load(); // the reserved orders without details have them now
}

function signedIn() {
  $("#sign-in").hidden = true;
  $("#mine").hidden = false;
  $("#sign-out").hidden = false;
  showAccount();
  listen();
  load();
  api("GET", "/me").then((user) => { session.keepUser(user); showAccount(); }).catch(() => {});
}

function signedOut() {
  state.socket?.disconnect();
  state.socket = null;
  state.orders = [];
  state.rows = new Map();
  clearTimeout(state.poll);
  $("#orders").replaceChildren();
  $("#sign-in").hidden = false;
  $("#mine").hidden = true;
  $("#sign-out").hidden = true;
  confirmPayment();
}

$("#sign-out").addEventListener("click", () => {
  session.clear();
  signedOut();
});
$("#edit-delivery").addEventListener("click", () => addDelivery("Where your orders go, and how the seller reaches you."));
$("#more").addEventListener("click", older);
authForm($("#auth-form"), $("#auth-status"), signedIn);
setInterval(tickHolds, 1000);
if (session.token) signedIn();
else signedOut();
