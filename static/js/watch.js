// Viewer: WebRTC (WHEP) first, HLS when WebRTC fails or is switched off (?hls or ?webrtc=0) and
// for a rewind, the replay after the show; pinned products, tags, chat and reactions over Socket.IO.
// Text from users is only ever set with textContent.
import { auctionPanel } from "./auction.js";
import { $, REACTIONS, SOLD_OUT, api, authForm, connect, el, emit, money, say, session, thumbnail } from "./common.js";
import { replayComments } from "./comments.js";
import { embed } from "./embedding.js";
import { followBar, refreshFollow } from "./follow.js";
import { createHls, loadHls, seekWithin } from "./hlsplayer.js";
import { onPictureChange, placeOnPicture } from "./picture.js";
import { askDelivery, deliveryText, holdLine, howToPay, payAction, tickHolds, trackLink } from "./purchase.js";
import { preShow } from "./preshow.js";
import { watchReception } from "./reception.js";
import { iceServersFor, play, refreshIceServers } from "./webrtc.js";
import { shareLocation } from "./whereabouts.js";

const streamId = decodeURIComponent(location.pathname.split("/").pop());
const video = $("#player");
const status = $("#status");
const params = new URLSearchParams(location.search);
const forceHls = params.has("hls") || params.get("webrtc") === "0";
const FINISHED = new Set(["ended", "interrupted", "cancelled"]);
const REPLAY_POLLS = 200;
const REWIND_SECONDS = 30;
const MOMENT_MS = 4000;
const WARM_RETRY_MS = 300;
const BUY = embed.hostCart ? "Add to cart" : "Buy now"; // the shop's own cart takes the order

const state = {
  stream: null, socket: null, playback: null, products: new Map(), pins: new Map(),
  timeline: [], replay: false, waitingForLive: false, ownReactions: {}, rewoundFromWebRtc: false,
  cards: new Map(), chatRefusal: null, warmingUntil: 0, auctioned: null, preshow: null,
  orders: new Map(), // product id -> this viewer's latest order of it in this show
};

function show(text, mode, kind) {
  say(status, text, kind);
  if (mode) document.body.dataset.mode = mode;
}

function setStatus(now) {
  document.body.dataset.status = now;
  const labels = { created: "Soon", live: "LIVE", reconnecting: "Reconnecting", ended: "Ended", interrupted: "Ended", cancelled: "Cancelled" };
  $("#state").textContent = labels[now] || now;
  embed.status(now);
}

// Time to first frame: from navigation (performance.now() is 0 there) to the first decoded frame.
function watchFirstFrame() {
  if (!video.requestVideoFrameCallback) return;
  video.requestVideoFrameCallback((now) => {
    window.shopcastFirstFrame = now;
    document.body.dataset.firstFrame = String(Math.round(now));
  });
}

// hls.js is loaded only when needed, so that WebRTC viewers do not wait for it. `behind`: start
// that many seconds behind the live edge (a rewind from WebRTC).
async function playHls(url, { live, behind = 0 }) {
  state.playback = "hls";
  window.shopcastPlayer?.stop?.();
  video.srcObject = null; // a WebRTC stream left here would win over the HLS source
  window.shopcastPlayer = { mode: live ? "hls" : "replay", url };
  watchFirstFrame();
  const Hls = await loadHls();
  if (Hls.isSupported()) {
    const hls = createHls(Hls, url, video, {
      live,
      behind,
      // Restricted shows: our own /hls/ routes check the viewer's token (never sent elsewhere).
      xhrSetup: (xhr, target) => {
        if (session.token && target.startsWith(`${location.origin}/hls/`)) xhr.setRequestHeader("Authorization", `Bearer ${session.token}`);
      },
    });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (data.fatal) show(`Playback error: ${data.details}`, null, "error");
    });
    window.shopcastPlayer.hls = hls;
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url;
    if (behind) video.addEventListener("loadedmetadata", () => seekWithin(video, -behind), { once: true });
  } else {
    show("This browser can play neither WebRTC nor HLS.", null, "error");
    return;
  }
  video.play().catch(() => {});
  if (live && state.socket) notify("stream:playback", { playback: "hls" });
  show(live ? "Live (HLS)." : "Replay.", live ? "hls" : "replay");
}

// WHEP starts at once, in parallel with loading the show, for the quickest first frame. The
// ICE servers come first: TURN is how a viewer whose network blocks UDP still gets WebRTC.
async function startWhep() {
  state.playback = "webrtc";
  watchFirstFrame();
  const url = `${location.origin}/whep/${encodeURIComponent(streamId)}`;
  const token = session.token || undefined;
  const load = () => iceServersFor(streamId, token);
  const ice = await load();
  const whep = await play(url, video, token, ice.ice_servers);
  refreshIceServers(whep.pc, load, ice.expires_in);
  return whep;
}

async function playWebRtc(early) {
  const before = state.playback;
  state.connecting = true;
  try {
    const whep = await (early || startWhep());
    window.shopcastPlayer = { mode: "webrtc", ...whep };
    whep.pc.addEventListener("connectionstatechange", () => {
      document.body.dataset.connection = whep.pc.connectionState;
      if (whep.pc.connectionState === "failed" && !FINISHED.has(state.stream.status)) {
        playHls(state.stream.hls_url, { live: true });
      }
    });
    watchReception(whep.pc, (audioOnly) => { $("#audio-only").hidden = !audioOnly; });
    if (before === "hls" && state.socket) notify("stream:playback", { playback: "webrtc" });
    show("Live.", "webrtc");
  } catch (error) {
    if (error.status === 409 && error.retryAfter) {
      show("The show has not started yet…", "waiting");
      state.waitingForLive = true;
      // During the countdown the seller's session is coming up: ask again soon, so the first
      // frame is decoded behind the countdown and shows at zero.
      const wait = Date.now() < state.warmingUntil ? WARM_RETRY_MS : error.retryAfter * 1000;
      state.retry = setTimeout(() => { if (state.waitingForLive) startPlayback(); }, wait);
    } else {
      playHls(state.stream.hls_url, { live: true });
    }
  } finally {
    state.connecting = false;
  }
}

const canWebRtc = !forceHls && Boolean(window.RTCPeerConnection);
const webRtcPlaying = () => window.shopcastPlayer?.mode === "webrtc"
  && ["new", "connecting", "connected"].includes(window.shopcastPlayer.pc.connectionState);

function startPlayback(early) {
  state.waitingForLive = false;
  clearTimeout(state.retry); // one attempt at a time: a countdown or "live" may come first
  if (FINISHED.has(state.stream.status)) {
    early?.then((done) => done.stop()).catch(() => {});
    return startReplay();
  }
  if (!canWebRtc) return playHls(state.stream.hls_url, { live: true });
  return playWebRtc(early);
}

// Rewind: WebRTC plays only the live edge, so the first tap moves to HLS, 30 s behind it (within
// the DVR window); later taps go back further. Live returns to WebRTC, or to HLS's live edge for
// a viewer who was on HLS anyway.
function setBehind(behind) {
  document.body.dataset.behind = behind ? "yes" : "";
  $("#go-live").hidden = !behind;
}

async function rewind() {
  setBehind(true);
  if (window.shopcastPlayer?.mode === "webrtc") {
    state.rewoundFromWebRtc = true;
    await playHls(state.stream.hls_url, { live: true, behind: REWIND_SECONDS });
  } else {
    seekWithin(video, -REWIND_SECONDS);
  }
  show("Behind live (HLS): tap Live to return.", "hls");
}

function goLive() {
  setBehind(false);
  if (state.rewoundFromWebRtc) {
    state.rewoundFromWebRtc = false;
    window.shopcastPlayer?.hls?.destroy();
    return playWebRtc();
  }
  const hls = window.shopcastPlayer?.hls;
  if (hls?.liveSyncPosition) video.currentTime = hls.liveSyncPosition;
  else seekWithin(video, Infinity);
  show("Live (HLS).", "hls");
}

$("#rewind").addEventListener("click", rewind);
$("#go-live").addEventListener("click", goLive);

async function startReplay() {
  state.replay = true;
  setStatus(state.stream.status);
  for (let poll = 0; poll < REPLAY_POLLS && !state.stream.vod_url; poll += 1) {
    show("The show has ended; its replay is being prepared…", "ended");
    await new Promise((resolve) => setTimeout(resolve, 3000));
    state.stream = await api("GET", `/streams/${encodeURIComponent(streamId)}`);
  }
  if (!state.stream.vod_url) return show("The show has ended; its replay is not ready yet.", "ended");
  window.shopcastPlayer?.stop?.();
  video.srcObject = null;
  await loadTimeline();
  video.controls = true; // a replay is scrubbed with the browser's own controls
  playHls(state.stream.vod_url, { live: false });
  video.addEventListener("timeupdate", replayCues);
  if (state.stream.enable_comments) replayComments(streamId, video, { signedIn: () => Boolean(session.token), signIn: askSignIn });
}

// Product cues in the replay: the pins active at the video's time, from the stored timeline.
async function loadTimeline() {
  const pins = await api("GET", `/streams/${encodeURIComponent(streamId)}/pins`);
  state.timeline = pins.timeline.filter((cue) => cue.offset_seconds !== null);
}

function replayCues() {
  const now = video.currentTime;
  const active = new Map();
  for (const cue of state.timeline) {
    if (cue.offset_seconds > now) break;
    const item = state.products.get(cue.product_id);
    if (!item) continue;
    if (cue.action === "pin") {
      active.set(cue.product_id, {
        product: item.product, x: cue.x, y: cue.y, replay: true,
        // A replay that sells does so at the list price; one that does not shows what it cost.
        sale: cue.sale_price_cents && !state.stream.shoppable_replay ? { price_cents: cue.sale_price_cents } : null,
      });
    } else if (cue.action === "unpin") {
      active.delete(cue.product_id);
    } else if (active.has(cue.product_id)) {
      Object.assign(active.get(cue.product_id), { x: cue.x, y: cue.y });
    }
  }
  const key = (pins) => [...pins.entries()].map(([id, p]) => `${id}@${p.x},${p.y}`).join("|");
  if (key(active) !== key(state.pins)) {
    state.pins = active;
    renderPins();
  }
}

// Pinned products: one card per product, kept across updates (a purchase's outcome stays on
// its card while other products are pinned), and tags placed on the picture itself.
const offerKey = (pin) => `${pin.product.id}:${pin.sale?.ends_at ?? ""}:${pin.sale?.price_cents ?? ""}:${pin.replay ? "r" : ""}`;

function renderPins() {
  const pins = [...state.pins.values()].reverse().filter((pin) => pin.product.id !== state.auctioned); // newest first
  const keep = new Map();
  for (const pin of pins) {
    const key = offerKey(pin);
    const old = state.cards.get(pin.product.id);
    keep.set(pin.product.id, old?.key === key ? old : { key, node: card(pin) });
  }
  state.cards = keep;
  const nodes = [...keep.values()].map((entry) => entry.node);
  const list = $("#pinned");
  if (nodes.length !== list.children.length || nodes.some((node, i) => list.children[i] !== node)) {
    const newFirst = nodes[0] !== list.firstElementChild;
    list.replaceChildren(...nodes);
    if (newFirst) list.scrollTo({ left: 0, top: 0 });
  }
  for (const pin of pins) updateCard(pin);
  $("#tags").replaceChildren(...pins.filter((pin) => pin.x !== null && pin.x !== undefined).map((pin) => el("button", {
    type: "button", class: "tag pinned", dataset: { productId: pin.product.id, x: pin.x, y: pin.y },
    onclick: () => { clicked(pin.product.id); $(`#card-${pin.product.id}`)?.focus(); },
  }, pin.product.title)));
  placeTags();
  tick();
}

function placeTags() {
  for (const tag of $("#tags").children) placeOnPicture(video, tag, Number(tag.dataset.x), Number(tag.dataset.y));
}

function card(pin) {
  const { product, sale } = pin;
  const order = state.orders.get(product.id);
  const closed = pin.replay && !state.stream.shoppable_replay;
  const buy = el("button", { type: "button", class: "buy", onclick: () => buyNow(pin, buy) }, closed ? "Show ended" : BUY);
  if (closed) buy.disabled = true;
  const node = el("li", {
    id: `card-${product.id}`, class: `card pinned enter${sale ? " on-sale" : ""}`, tabindex: "-1",
    dataset: { productId: product.id }, onclick: (event) => { if (event.target === event.currentTarget) clicked(product.id); },
  },
  thumbnail(product),
  el("div", { class: "card-body" },
    el("strong", { class: "product-title" }, product.title),
    el("p", { class: "prices" },
      sale ? el("s", { class: "was" }, money(product.price_cents, product.currency)) : null,
      el("span", { class: "price" }, money(sale ? sale.price_cents : product.price_cents, product.currency))),
    pin.replay ? null : el("p", { class: "muted stock" }, ""),
    sale?.ends_at ? el("p", { class: "countdown-line", dataset: { endsAt: sale.ends_at } }, "") : null,
    el("p", { class: "result", role: "status" }, ""),
    el("div", { class: "order-line" })),
  el("div", { class: "card-actions" }, buy,
    pin.replay ? null : el("button", { type: "button", class: "secondary", onclick: () => ask(product) }, "Ask"),
    product.checkout_url?.startsWith("https://")
      ? el("a", { href: product.checkout_url, class: "button secondary", rel: "noopener noreferrer", target: "_blank" }, "Seller's shop")
      : null));
  // A new offer's card (a sale starts, the replay) keeps an order still to be paid; a paid one
  // does not stop the viewer buying again.
  if (order?.status === "reserved") showOrder(node, order);
  return node;
}

/** The card's stock line and Buy button from what the room last said; an order's outcome wins. */
function updateCard(pin) {
  const node = $(`#card-${pin.product.id}`);
  if (!node || pin.replay) return;
  const soldOut = pin.sale ? pin.sale.remaining <= 0 : pin.product.stock <= 0;
  const ended = Boolean(pin.sale?.ends_at) && Date.parse(pin.sale.ends_at) <= Date.now();
  node.querySelector(".stock").textContent = soldOut || ended ? "" : stockText(pin);
  const buy = node.querySelector(".buy");
  if (OPEN_ORDERS.has(node.dataset.order) || buy.dataset.key) return; // the order speaks
  const closed = soldOut ? "Sold out" : ended ? "Sale ended" : null;
  buy.disabled = Boolean(closed);
  buy.textContent = closed || BUY;
  node.classList.toggle("expired", Boolean(closed));
}

function stockText(pin) {
  if (pin.sale) return `${pin.sale.remaining} left at this price`;
  return `${pin.product.stock} in stock`;
}

function tick() {
  tickHolds();
  for (const line of document.querySelectorAll(".countdown-line")) {
    const left = Math.max(0, Math.round((Date.parse(line.dataset.endsAt) - Date.now()) / 1000));
    line.textContent = left > 0 ? `Sale ends in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` : "";
    if (left === 0 && !line.dataset.over) {
      line.dataset.over = "yes";
      const pin = state.pins.get(line.closest(".card").dataset.productId);
      if (pin) updateCard(pin);
    }
  }
}
setInterval(tick, 250);
onPictureChange(video, placeTags);

function notify(event, payload) {
  // Funnel counters (product:click, product:ask, stream:playback): nothing waits for the answer.
  state.socket?.timeout(5000).emit(event, { stream_id: streamId, ...payload }, () => {});
}
function clicked(productId) {
  notify("product:click", { product_id: productId });
  embed.productClicked(state.pins.get(productId) ?? state.products.get(productId));
}
function ask(product) {
  notify("product:ask", { product_id: product.id });
  const input = $("#chat-form").text;
  if (!session.token) return openAccount();
  input.value = `Question about ${product.title}: `;
  input.focus();
}

async function buyNow(pin, button) {
  const card = button.closest(".card");
  const result = card.querySelector(".result");
  notify("product:click", { product_id: pin.product.id });
  if (embed.hostCart) {
    embed.addToCart(pin, 1);
    return say(result, "Added to your cart.", "ok");
  }
  if (!session.token) {
    say(result, "Sign in to buy.");
    state.afterSignIn = () => button.click();
    return openAccount();
  }
  // One key per purchase attempt: a retried request cannot buy twice.
  button.dataset.key ||= crypto.randomUUID();
  button.disabled = true;
  try {
    const order = await api("POST", `/streams/${encodeURIComponent(streamId)}/orders`,
      { product_id: pin.product.id, quantity: 1 }, { "Idempotency-Key": button.dataset.key });
    orderChanged(order);
  } catch (error) {
    delete button.dataset.key;
    if (SOLD_OUT.has(error.code)) {
      // The button says it; the card's stock line and result stay quiet.
      card.dataset.order = "sold_out";
      say(result, "");
      button.textContent = error.code === "sale_ended" ? "Sale ended" : "Sold out";
      card.querySelector(".stock").textContent = "";
      return;
    }
    say(result, error.message, "error");
    button.disabled = false;
  }
}

// Chat and reactions.
function addChat(message) {
  if (document.getElementById(`m-${message.id}`)) return;
  const chat = $("#chat");
  const host = message.user.id === state.stream?.owner.id;
  chat.append(el("li", { id: `m-${message.id}`, class: host ? "host" : null },
    el("strong", {}, message.user.display_name), host ? el("span", { class: "host-badge" }, "Host") : null,
    " ", el("span", { class: "text" }, message.text)));
  while (chat.children.length > 200) chat.firstChild.remove();
  chat.scrollTop = chat.scrollHeight;
}

$("#chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = event.target.text;
  if (!input.value.trim()) return;
  try {
    await emit(state.socket, "stream:chat", { stream_id: streamId, text: input.value });
    input.value = "";
  } catch (error) {
    show(`Chat: ${error.message}`, null, "error");
    if (error.code === "muted" || error.code === "banned") refuseChat(error.code);
  }
});

function float(emoji) {
  const layer = $("#floats");
  if (layer.childElementCount > 30) return;
  const bubble = el("span", { class: "float", style: `left:${10 + Math.random() * 80}%` }, emoji);
  bubble.addEventListener("animationend", () => bubble.remove());
  layer.append(bubble);
}

$("#reactions").append(...REACTIONS.map((emoji) => el("button", {
  type: "button", class: "reaction", "aria-label": `React ${emoji}`,
  onclick: async () => {
    float(emoji);
    state.ownReactions[emoji] = (state.ownReactions[emoji] || 0) + 1;
    try {
      await emit(state.socket, "stream:reaction", { stream_id: streamId, emoji });
    } catch (error) {
      state.ownReactions[emoji] -= 1;
      show(`Reaction: ${error.message}`, null, "error");
    }
  },
}, emoji)));

// The room.
const auction = auctionPanel($("#auction"), {
  streamId,
  title: (productId) => (state.pins.get(productId) ?? state.products.get(productId))?.product.title,
  signIn: () => openAccount(),
  // A product under auction is bid for, not bought: its card waits for the hammer.
  onChange: (running) => {
    state.auctioned = running.state === "open" ? running.product_id : null;
    renderPins();
  },
});

function openSocket() {
  state.socket?.disconnect();
  const socket = connect();
  state.socket = socket;
  auction.attach(socket);
  socket.on("connect", () => join().catch((error) => show(error.message, null, "error")));
  socket.on("stream:viewers", ({ count }) => { $("#viewers").textContent = String(count); });
  socket.on("stream:chat", addChat);
  socket.on("stream:chat_batch", ({ messages }) => messages.forEach(addChat));
  socket.on("stream:chat_deleted", ({ ids }) => ids.forEach((id) => document.getElementById(`m-${id}`)?.remove()));
  socket.on("stream:reactions", ({ counts }) => {
    for (const [emoji, n] of Object.entries(counts)) {
      const own = Math.min(state.ownReactions[emoji] || 0, n);
      state.ownReactions[emoji] = (state.ownReactions[emoji] || 0) - own;
      for (let i = 0; i < Math.min(n - own, 8); i += 1) float(emoji);
    }
  });
  socket.on("stream:status", (change) => {
    if (change.preparing) return prepare(change.countdown);
    state.stream.status = change.status;
    setStatus(change.status);
    if (change.status === "live") state.preshow?.leave();
    if (change.status === "cancelled") return location.reload();
    if (change.status === "live" && state.waitingForLive) startPlayback();
    else if (change.status === "live" && canWebRtc && !webRtcPlaying() && !state.connecting && !document.body.dataset.behind) {
      // The seller is back after a drop that cost us the WebRTC session (HLS took over): retry it.
      window.shopcastPlayer?.hls?.destroy();
      playWebRtc();
    }
    if (FINISHED.has(change.status) && !state.replay) {
      setBehind(false);
      window.shopcastPlayer?.stop?.();
      window.shopcastPlayer?.hls?.destroy();
      state.pins.clear();
      renderPins();
      startReplay();
    }
  });
  socket.on("stream:banned", () => {
    window.shopcastPlayer?.stop?.();
    window.shopcastPlayer?.hls?.destroy();
    video.removeAttribute("src");
    video.srcObject = null;
    refuseChat("banned");
    show("You have been removed from this show.", "banned", "error");
  });
  socket.on("product:pinned", (pin) => {
    if (state.replay) return;
    state.pins.delete(pin.product.id); // a pin again (a sale starts) moves it to the front
    state.pins.set(pin.product.id, pin);
    renderPins();
  });
  socket.on("product:unpinned", ({ product_id: id }) => {
    if (state.replay) return;
    state.pins.delete(id);
    renderPins();
  });
  socket.on("product:tagged", (tag) => {
    const pin = state.pins.get(tag.product_id);
    if (!pin || state.replay) return;
    Object.assign(pin, { x: tag.x, y: tag.y });
    renderPins();
  });
  socket.on("order:status", orderChanged);
  socket.on("product:stock", (change) => {
    const pin = state.pins.get(change.product_id);
    if (!pin || state.replay) return;
    pin.product.stock = change.stock;
    if (pin.sale && change.sale_remaining !== null) pin.sale.remaining = change.sale_remaining;
    updateCard(pin);
    if (change.buyer) moment(`${change.buyer} bought ${pin.product.title}`);
  });
}

// The viewer's own order on its card, as it changes: reserved (the hold's countdown and how to
// pay, by the seller's checkout), paid, shipped (with Track); after a cancellation or an expired
// hold the units are back on sale and the viewer may buy again.
const OPEN_ORDERS = new Set(["reserved", "paid", "shipped"]);
const ORDER_NEWS = {
  paid: ["Paid ✓", () => "Paid. Thank you!"],
  shipped: ["Shipped", () => "On its way to you."],
  cancelled: [null, (order) => (order.paid_at
    ? "The seller cancelled this order: your payment is refunded."
    : "The seller cancelled this order.")],
  expired: [null, () => "Your hold ran out: the units went back."],
};

function orderChanged(order) {
  if (order.stream_id !== streamId) return;
  const known = state.orders.get(order.product_id);
  if (known && known.id !== order.id && Date.parse(known.created_at) > Date.parse(order.created_at)) return;
  if (known?.id === order.id && order.status === "reserved" && known.status !== "reserved") return; // stale
  state.orders.set(order.product_id, order);
  const node = $(`#card-${order.product_id}`);
  if (node) showOrder(node, order);
}

function showOrder(node, order) {
  const buy = node.querySelector(".buy");
  const result = node.querySelector(".result");
  const line = node.querySelector(".order-line");
  node.querySelector(".card-actions .pay")?.remove();
  buy.hidden = false;
  line.replaceChildren();
  if (order.status === "reserved") return showReserved(node, order, buy, result, line);
  const news = ORDER_NEWS[order.status];
  if (!news) return;
  const [label, text] = news;
  say(result, text(order), label ? "ok" : null);
  if (label) {
    node.dataset.order = order.status;
    buy.textContent = label;
    buy.disabled = true;
    const track = trackLink(order);
    if (track) line.append(track);
    return;
  }
  delete node.dataset.order; // the units are back on sale: this viewer may buy again
  delete buy.dataset.key;
  const pin = state.pins.get(order.product_id);
  if (pin) updateCard(pin);
}

function showReserved(node, order, buy, result, line) {
  const { checkout } = state.stream;
  const product = (state.pins.get(order.product_id) ?? state.products.get(order.product_id))?.product;
  node.dataset.order = "reserved";
  buy.textContent = "Reserved";
  buy.disabled = true;
  say(result, howToPay(order, checkout, product), "ok");
  const pay = payAction(order, checkout, product, result);
  if (pay) {
    buy.hidden = true; // Pay takes its place
    buy.before(pay);
  }
  line.append(holdLine(order));
  // An invoiced order ships to the account's address: asked for on the card, once.
  if (checkout === "pay_later" && !order.delivery) {
    line.append(el("button", { type: "button", class: "secondary address", onclick: addDelivery }, "Add delivery details"));
  }
}

async function addDelivery() {
  const user = await askDelivery("Where should it go? The seller ships to this address.");
  if (user) deliveryAdded(user);
}

// The server copied the details onto the reserved orders that had none (order:status says so
// too): the cards stop asking at once.
function deliveryAdded(user) {
  for (const order of [...state.orders.values()]) {
    if (order.status === "reserved" && !order.delivery) orderChanged({ ...order, delivery: user.delivery });
  }
}

// After a reload or a sign-in: the viewer's reserved orders of this show are back on their cards.
async function restoreOrders() {
  try {
    const [user, mine] = await Promise.all([api("GET", "/me"), api("GET", "/me/orders?limit=50")]);
    session.keepUser(user);
    for (const order of mine.reverse()) { // oldest first: a product's latest order wins
      if (order.stream_id === streamId && order.status === "reserved") orderChanged(order);
    }
  } catch {
    // The cards work without: Buy still buys.
  }
}

// "Ann bought the mug": a short line over the video when someone buys.
let momentTimer = null;
function moment(text) {
  const line = $("#moment");
  line.textContent = text;
  line.hidden = false;
  clearTimeout(momentTimer);
  momentTimer = setTimeout(() => { line.hidden = true; }, MOMENT_MS);
}

async function join() {
  const room = await emit(state.socket, "stream:join", { stream_id: streamId, playback: state.playback || "webrtc" });
  session.keepViewerId(room.viewer_id);
  $("#viewers").textContent = String(room.viewers);
  $("#chat").replaceChildren();
  room.chat.forEach(addChat);
  state.products = new Map(room.products.map((item) => [item.product.id, item]));
  state.preshow?.lineup(room.products);
  state.chatRefusal = null;
  state.chatEnabled = room.stream.enable_chat;
  composer();
  if (!state.replay) {
    const pins = await api("GET", `/streams/${encodeURIComponent(streamId)}/pins`);
    state.pins = new Map(pins.pinned.map((pin) => [pin.product.id, pin]));
    renderPins();
    auction.load().catch(() => {});
  }
  if (session.token) restoreOrders();
  embed.ready(state.stream);
}

// The seller pressed Go live: the countdown runs while WebRTC already connects behind it.
function prepare(seconds) {
  state.warmingUntil = Date.now() + (seconds + 10) * 1000;
  countdown(seconds);
  if (state.waitingForLive && canWebRtc && !state.connecting) startPlayback();
}

function countdown(seconds) {
  const box = $("#countdown");
  box.hidden = false;
  let left = seconds;
  const step = () => {
    box.textContent = left > 0 ? `Starting in ${left}` : "";
    if (left <= 0) {
      box.hidden = true;
      window.shopcastCountdownEnd = performance.now(); // what the warm-up is measured from
    }
    else setTimeout(step, 1000);
    left -= 1;
  };
  step();
}

// The composer: the chat box for a signed-in viewer, a sign-in button for others, a line saying
// why for a muted or banned one.
function composer() {
  const refused = state.chatRefusal;
  $("#chat-form").hidden = !session.token || !state.chatEnabled || Boolean(refused);
  $("#chat-sign-in").hidden = Boolean(session.token) || !state.chatEnabled;
  if (refused === "muted") show("You are muted in this show: you can watch, react and buy.", null, "warning");
}

function refuseChat(code) {
  state.chatRefusal = code;
  composer();
}

// The account sheet: the form for a visitor, the name and Sign out for a signed-in viewer.
function openAccount() {
  const signedInNow = Boolean(session.user);
  $("#auth-form").hidden = signedInNow;
  $("#signed-in").hidden = !signedInNow;
  $("#account-title").textContent = signedInNow ? "Your account" : "Sign in to chat and buy";
  if (signedInNow) {
    $("#signed-in-name").textContent = session.user.display_name;
    $("#delivery-summary").textContent = deliveryText(session.user.delivery) || "No delivery details yet.";
  }
  $("#account").showModal();
  (signedInNow ? $("#sign-out") : $("#auth-form").email).focus();
}

function askSignIn(then) {
  state.afterSignIn = then;
  openAccount();
}

function accountButton() {
  $("#account-button").textContent = session.user ? session.user.display_name : "Sign in";
}

function signedIn() {
  $("#account").close();
  $("#auth-form").reset();
  accountButton();
  openSocket();
  refreshFollow();
  state.preshow?.refresh();
  const then = state.afterSignIn;
  state.afterSignIn = null;
  then?.();
}

$("#account-button").addEventListener("click", openAccount);
$("#chat-sign-in").addEventListener("click", openAccount);
$("#account-close").addEventListener("click", () => $("#account").close());
function signedOut() {
  $("#account").close();
  state.orders.clear();
  accountButton();
  openSocket();
  refreshFollow();
}
$("#edit-delivery").addEventListener("click", async () => {
  $("#account").close();
  const user = await askDelivery();
  if (user) deliveryAdded(user);
});
$("#sign-out").addEventListener("click", () => {
  session.clear();
  signedOut();
});

// Sound: autoplay is muted (browsers allow nothing else); one tap turns it on.
function soundState() {
  $("#unmute").hidden = !video.muted;
  $("#sound").setAttribute("aria-pressed", String(!video.muted));
  $("#sound").textContent = video.muted ? "🔇" : "🔊";
  $("#sound").setAttribute("aria-label", video.muted ? "Turn sound on" : "Turn sound off");
}
function toggleSound() {
  video.muted = !video.muted;
  video.play().catch(() => {});
  soundState();
}
$("#unmute").addEventListener("click", toggleSound);
$("#sound").addEventListener("click", toggleSound);
video.addEventListener("volumechange", soundState);
soundState();

// Full screen keeps the cards and chat over the video (the page, not the bare <video>); iOS
// Safari can only take the video itself full screen.
$("#fullscreen").addEventListener("click", () => {
  const layout = $("#show");
  if (document.fullscreenElement) document.exitFullscreen();
  else if (layout.requestFullscreen) layout.requestFullscreen().catch(() => {});
  else video.webkitEnterFullscreen?.();
});

// The picture's shape decides how it fills a phone: a portrait show fills a portrait screen.
video.addEventListener("resize", () => {
  if (video.videoWidth && video.videoHeight) document.body.dataset.shape = video.videoHeight > video.videoWidth ? "portrait" : "landscape";
});

async function start() {
  const early = canWebRtc ? startWhep() : null;
  early?.catch(() => {});
  try {
    state.stream = await api("GET", `/streams/${encodeURIComponent(streamId)}`);
  } catch (error) {
    early?.then((done) => done.stop()).catch(() => {});
    const audience = error.details?.audience;
    if (audience === "followers") show("This show is for the seller's followers: follow them to watch.", null, "error");
    else if (error.details?.needs_location) askLocation();
    else if (audience === "neighborhood" && error.status === 403) show("This show is for people near the seller.", null, "error");
    else if (audience) show("This show is for the seller's neighbourhood: sign in.", null, "error");
    // Following from here opens the show: the page loads again as a follower.
    if (error.details?.seller_id) followBar(error.details.seller_id, { signIn: askSignIn, onFollow: () => location.reload() });
    else if (error.status === 404) missing();
    else if (!audience) show(`Could not load the show (${error.message}).`, null, "error");
    if (error.status === 401) openAccount();
    embed.emit("error", { error: error.code, status: error.status });
    return;
  }
  $("#title").textContent = state.stream.title;
  followBar(state.stream.owner.id, { signIn: askSignIn });
  $("#timeshift").hidden = !state.stream.record_stream; // no recording: nothing to rewind into
  document.title = `${state.stream.title} · Shopcast`;
  setStatus(state.stream.status);
  if (forceHls) state.playback = "hls";
  const planned = state.stream.status === "created" && state.stream.scheduled_at;
  if (planned || state.stream.status === "cancelled") state.preshow = preShow(state.stream, { signIn: askSignIn });
  if (state.stream.status === "cancelled") {
    early?.then((done) => done.stop()).catch(() => {});
    show("");
    return;
  }
  openSocket();
  await startPlayback(early);
}

// A neighbourhood show, and the viewer has not said where they are: offer to, then load again.
function askLocation() {
  show("This show is for people near the seller. Share your approximate location (about 6 km around you, never the exact point) to watch.", null, "error");
  const share = el("button", { type: "button", id: "share-location" }, "Share my approximate location");
  share.addEventListener("click", async () => {
    share.disabled = true;
    try {
      await shareLocation();
      location.reload();
    } catch (error) {
      show(error.message, null, "error");
      share.disabled = false;
    }
  });
  status.after(share);
}

function missing() {
  document.body.dataset.status = "missing";
  $("#show").hidden = true;
  $("#missing").hidden = false;
  document.title = "No such show · Shopcast";
}

// The shop's page opens a product (the embedded player): its card comes first, highlighted,
// pinned or not (any product of the show while it is live).
function openProduct(productId) {
  const item = state.pins.get(productId) ?? state.products.get(productId);
  if (!item || (state.replay && !state.pins.has(productId))) return false;
  if (!state.replay) {
    const pin = state.pins.get(productId) ?? { product: item.product, sale: null, x: null, y: null };
    state.pins.delete(productId);
    state.pins.set(productId, pin);
    renderPins();
  }
  for (const node of $("#pinned").children) node.classList.toggle("opened", node.dataset.productId === productId);
  return true;
}

embed.serve({ openProduct, signedIn, signedOut });
authForm($("#auth-form"), $("#auth-status"), signedIn);
accountButton();
start();
