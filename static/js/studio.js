// The seller's studio: sign in, the five Go Live steps, then the live panel and the summary.
import { encode } from "/static/node_modules/uqr/dist/index.mjs";
import { auctionLine, newer, offsetOf } from "./auction.js";
import { $, api, authForm, confirmAction, connect, el, emit, money, say, session, thumbnail } from "./common.js";
import { checkoutChoice, salesDesk } from "./fulfilment.js";
import { onPictureChange, placeOnPicture, pointOnPicture } from "./picture.js";
import { plannedShows } from "./planned.js";
import { iceServersFor, publish, refreshIceServers } from "./webrtc.js";
import { shareLocation } from "./whereabouts.js";

const status = $("#status");
const preview = $("#preview");
const RECONNECT_LIMIT = 30;
const COUNTDOWN = 3;
const state = {
  details: null, stream: null, catalogue: [], chosen: new Set(), media: null, facing: "user", reloadPlanned: null,
  live: null, socket: null, products: new Map(), pins: new Map(), tagging: null, startedAt: null,
  reconnecting: false, ended: false, likes: 0, checkout: "pay_later",
  auctions: new Map(), auctionOffset: 0, // product id -> its latest auction in this show
};
const desk = salesDesk({
  streamId: () => state.stream?.id,
  productTitle: (id) => state.products.get(id)?.product.title,
  payLater: () => state.checkout === "pay_later",
  onCount: (count) => {
    $("#sales-count").textContent = String(count);
    $("#sales-button").setAttribute("aria-label", `Orders: ${count}`);
  },
  visible: () => $("#sales").open || !$("#summary").hidden,
});
const checkout = checkoutChoice($("#checkout"), state.checkout, (chosen) => { state.checkout = chosen; });

function showStep(n) {
  for (const section of document.querySelectorAll(".step")) section.hidden = section.id !== `step-${n}`;
  for (const item of document.querySelectorAll("#steps li")) {
    const step = Number(item.dataset.step);
    item.classList.toggle("done", step < n);
    if (step === n) item.setAttribute("aria-current", "step");
    else item.removeAttribute("aria-current");
  }
  $("#steps").hidden = false;
  $("#stage").hidden = n < 4;
  document.body.dataset.step = n;
  document.querySelector(`#step-${n} h2`)?.focus?.();
}

function signedIn(user) {
  $("#who").textContent = user.display_name;
  if (!["seller", "admin"].includes(user.role)) {
    $("#auth").hidden = false;
    say($("#auth-status"), "This account cannot sell: create a seller account.", "error");
    return;
  }
  $("#auth").hidden = true;
  state.checkout = user.checkout || "pay_later";
  checkout.set(state.checkout);
  showStep(1);
  offerResume().catch(() => {});
  plannedShows({ onGoLive: openShow }).then((reload) => { state.reloadPlanned = reload; }).catch(() => {});
}

// A show that exists already (left running, or planned): straight to the camera step.
async function openShow(stream) {
  $("#resume").hidden = true;
  state.stream = stream;
  document.body.dataset.streamId = stream.id;
  showStep(4);
  await startCamera();
}

// A show left running (the tab was closed or reloaded): go back to it from the camera step.
async function offerResume() {
  const running = [];
  for (const status of ["live", "reconnecting"]) {
    running.push(...await api("GET", `/streams?mine=true&status=${status}`));
  }
  if (!running.length) return;
  const [stream] = running;
  $("#resume-text").textContent = `"${stream.title}" is ${stream.status}. Go back to it, or plan a new show below.`;
  $("#resume").hidden = false;
  $("#resume-button").onclick = () => openShow(stream);
}

// Step 1: details.
$("#details").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  if (form.audience.value === "neighborhood" && !(await placed())) return;
  state.details = {
    title: form.title.value.trim(),
    description: form.description.value.trim(),
    audience: form.audience.value,
    scheduled_at: form.scheduled_at.value ? new Date(form.scheduled_at.value).toISOString() : null,
    estimated_duration: form.estimated_duration.value ? Number(form.estimated_duration.value) : null,
    notify_followers: form.notify_followers.checked,
    notify_neighborhood: form.notify_neighborhood.checked,
  };
  $("#save-later").hidden = !state.details.scheduled_at;
  showStep(2);
  await loadCatalogue();
});

// A neighbourhood show is for the people around its seller: the seller says roughly where.
async function placed() {
  try {
    if ((await api("GET", "/me")).home_cell) return true;
    say(status, "A neighbourhood show reaches people near you: your browser will ask to share your location (about 6 km around you is kept, never the exact point).");
    await shareLocation();
    say(status, "");
    return true;
  } catch (error) {
    say(status, `${error.message} Choose another audience, or allow location sharing.`, "error");
    return false;
  }
}

// Step 2: products.
async function loadCatalogue() {
  try {
    state.catalogue = await api("GET", "/products");
    renderCatalogue();
  } catch (error) {
    say(status, `Could not load your products: ${error.message}`, "error");
  }
}

function renderCatalogue() {
  const list = $("#catalogue");
  list.replaceChildren(...state.catalogue.map((product) => {
    return el("li", { class: "catalogue-item", dataset: { productId: product.id } },
      thumbnail(product) || el("span", { class: "thumb placeholder", "aria-hidden": "true" }, "🛍️"),
      el("label", { class: "check grow" },
        el("input", {
          type: "checkbox", value: product.id, checked: state.chosen.has(product.id),
          onchange: (event) => (event.target.checked ? state.chosen.add(product.id) : state.chosen.delete(product.id)),
        }),
        el("span", { class: "grow" }, el("strong", {}, product.title), el("br"),
          el("span", { class: "muted" }, `${money(product.price_cents, product.currency)} · ${product.stock} in stock`))),
      el("button", { type: "button", class: "small secondary", "aria-label": `Edit ${product.title}`, onclick: () => editProduct(product) }, "Edit"),
      el("button", { type: "button", class: "small secondary", "aria-label": `Delete ${product.title}`, onclick: () => deleteProduct(product) }, "Delete"));
  }));
  if (!state.catalogue.length) list.append(el("li", { class: "muted" }, "No products yet: add one below."));
}

// Adding and editing share the form; `state.editing` is the product being edited.
function editProduct(product) {
  const form = $("#product-form");
  state.editing = product;
  form.title.value = product.title;
  form.price.value = (product.price_cents / 100).toFixed(2);
  form.stock.value = String(product.stock);
  form.querySelector("button[type=submit]").textContent = "Save changes";
  $("#cancel-edit").hidden = false;
  $("#new-product").open = true;
  form.title.focus();
}

function stopEditing() {
  const form = $("#product-form");
  state.editing = null;
  form.reset();
  form.querySelector("button[type=submit]").textContent = "Add to catalogue";
  $("#cancel-edit").hidden = true;
}
$("#cancel-edit").addEventListener("click", stopEditing);

async function deleteProduct(product) {
  if (!await confirmAction(`Delete “${product.title}” from your catalogue?`, "Delete")) return;
  try {
    await api("DELETE", `/products/${product.id}`);
    state.catalogue = state.catalogue.filter((p) => p.id !== product.id);
    state.chosen.delete(product.id);
    renderCatalogue();
    say(status, `${product.title} deleted.`);
  } catch (error) {
    say(status, `Could not delete ${product.title}: ${error.message}`, "error");
  }
}

// A photo goes straight to storage with a presigned form, then is attached once checked.
async function uploadPhoto(product, file) {
  const grant = await api("POST", "/media/upload-url", {
    product_id: product.id, kind: "image", content_type: file.type, size: file.size,
  });
  const form = new FormData();
  for (const [name, value] of Object.entries(grant.fields)) form.append(name, value);
  form.append("file", file);
  const sent = await fetch(grant.url, { method: "POST", body: form });
  if (!sent.ok) throw new Error(`the photo upload failed (HTTP ${sent.status})`);
  await api("POST", "/media/image", { upload_key: grant.upload_key });
  return api("GET", `/products/${product.id}`);
}

$("#product-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = {
    title: form.title.value.trim(),
    price_cents: Math.round(Number(form.price.value) * 100),
    stock: Number(form.stock.value),
  };
  const photo = form.photo.files[0];
  const editing = state.editing;
  try {
    let product = editing ? await api("PATCH", `/products/${editing.id}`, body) : await api("POST", "/products", body);
    if (photo) {
      say(status, "Uploading the photo…");
      product = await uploadPhoto(product, photo);
    }
    if (editing) state.catalogue = state.catalogue.map((p) => (p.id === product.id ? product : p));
    else state.catalogue.push(product);
    state.chosen.add(product.id);
    renderCatalogue();
    stopEditing();
    say(status, `${product.title} ${editing ? "saved" : "added"}.`);
  } catch (error) {
    say(status, `Could not ${editing ? "save" : "add"} the product: ${error.message}`, "error");
  }
});

for (const back of document.querySelectorAll("[data-back]")) {
  back.addEventListener("click", () => showStep(Number(back.dataset.back)));
}
$("#to-settings").addEventListener("click", async () => {
  if (!state.chosen.size && !await confirmAction("Go on without products? Viewers will have nothing to buy.", "Go on without products")) return;
  showStep(3);
});

// Step 3: settings, then the show is created: for now, or saved for later when it has a date.
function showBody(form) {
  return {
    ...state.details,
    enable_chat: form.enable_chat.checked,
    enable_comments: form.enable_comments.checked,
    record_stream: form.record_stream.checked,
  };
}

$("#settings").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = showBody(event.target);
  const productIds = [...state.chosen];
  try {
    if (state.stream) {
      // Back from the camera step: the show exists already.
      state.stream = await api("PATCH", `/streams/${state.stream.id}/settings`, body);
      if (productIds.length) await api("POST", `/streams/${state.stream.id}/products`, { product_ids: productIds });
    } else {
      state.stream = await api("POST", "/streams", { ...body, product_ids: productIds });
    }
    document.body.dataset.streamId = state.stream.id;
    showStep(4);
    await startCamera();
  } catch (error) {
    say(status, `Could not create the show: ${error.message}`, "error");
  }
});

$("#save-later").addEventListener("click", async () => {
  try {
    const saved = await api("POST", "/streams", { ...showBody($("#settings")), product_ids: [...state.chosen] });
    $("#details").reset();
    state.chosen.clear();
    showStep(1);
    await state.reloadPlanned?.();
    say($("#planned-status"), `"${saved.title}" is planned: it is listed as upcoming, and viewers can ask to be reminded.`);
  } catch (error) {
    say(status, `Could not save the show: ${error.message}`, "error");
  }
});

// Step 4: camera, microphone, countdown.
async function camera(facing) {
  return navigator.mediaDevices.getUserMedia({
    video: { facingMode: { ideal: facing }, width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
    audio: !state.media,
  });
}

async function startCamera() {
  if (state.media) return;
  say(status, "Starting the camera…");
  try {
    state.media = await camera(state.facing);
    preview.srcObject = state.media;
    meterMicrophone(state.media);
    say(status, "Check your picture and sound, then go live.");
  } catch (error) {
    say(status, `No camera: ${error.message}. Allow the camera (the page must be on HTTPS).`, "error");
  }
}

async function flip() {
  if (!state.media) return;
  state.facing = state.facing === "user" ? "environment" : "user";
  const old = state.media.getVideoTracks()[0];
  const fresh = (await camera(state.facing)).getVideoTracks()[0];
  state.media.removeTrack(old);
  old.stop();
  state.media.addTrack(fresh);
  preview.srcObject = state.media;
  const sender = state.live?.pc.getSenders().find((s) => s.track?.kind === "video" || s.track === old);
  if (sender) await sender.replaceTrack(fresh);
  document.body.dataset.facing = state.facing;
}

function toggleMute() {
  const track = state.media?.getAudioTracks()[0];
  if (!track) return;
  track.enabled = !track.enabled;
  const label = track.enabled ? "Mute microphone" : "Unmute microphone";
  for (const button of [$("#mute"), $("#mute-live")]) button.setAttribute("aria-pressed", String(!track.enabled));
  $("#mute").textContent = label;
  $("#mute-live").setAttribute("aria-label", label);
  $("#mute-live").textContent = track.enabled ? "🎙️" : "🔇";
}

// The camera check's microphone meter: the level the microphone picks up, ten times a second.
function meterMicrophone(media) {
  const track = media.getAudioTracks()[0];
  if (!track || !window.AudioContext) return;
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 512;
  context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const meter = $("#mic-level");
  const timer = setInterval(() => {
    if (track.readyState === "ended" || state.ended) {
      clearInterval(timer);
      context.close();
      return;
    }
    analyser.getFloatTimeDomainData(samples);
    const rms = Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
    meter.value = track.enabled ? Math.min(1, rms * 4) : 0;
    meter.dataset.level = meter.value.toFixed(2);
  }, 100);
}

$("#flip").addEventListener("click", flip);
$("#flip-live").addEventListener("click", flip);
$("#mute").addEventListener("click", toggleMute);
$("#mute-live").addEventListener("click", toggleMute);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

$("#go-live").addEventListener("click", async (event) => {
  if (!state.media) return;
  event.target.disabled = true;
  try {
    state.socket = state.socket || openSocket();
    await emit(state.socket, "stream:prepare", { stream_id: state.stream.id, countdown: COUNTDOWN });
    // Warm-up: the WHIP session comes up during the countdown, so the SFU (and the recorder)
    // already have the picture when it reaches zero and viewers' first frame is there at once.
    const warming = publishNow();
    warming.catch(() => {}); // awaited below, after the countdown
    const countdown = $("#countdown");
    countdown.hidden = false;
    for (let n = COUNTDOWN; n > 0; n -= 1) {
      countdown.textContent = String(n);
      await sleep(1000);
    }
    countdown.hidden = true;
    await warming;
    showStep(5);
    $("#resume").hidden = true;
    await joinRoom();
  } catch (error) {
    say(status, `Could not go live: ${error.message}`, "error");
    event.target.disabled = false;
  }
});

async function publishNow() {
  const goLive = await api("POST", `/streams/${state.stream.id}/go-live`);
  const live = await publish(goLive.whip_url, goLive.publish_token, state.media, goLive.ice_servers);
  refreshIceServers(live.pc, () => iceServersFor(state.stream.id, session.token), goLive.ice_expires_in);
  state.live = live;
  window.shopcastPublisher = live;
  document.body.dataset.connection = live.pc.connectionState;
  live.pc.addEventListener("connectionstatechange", () => {
    if (state.live !== live) return;
    document.body.dataset.connection = live.pc.connectionState;
    if (["failed", "disconnected", "closed"].includes(live.pc.connectionState) && !state.ended) reconnect();
  });
  say(status, "You are live.");
  $("#badge").hidden = false;
}

// Reconnects by itself: a new publish token and WHIP session with the same camera.
async function reconnect() {
  if (state.reconnecting) return;
  state.reconnecting = true;
  $("#quality").textContent = "Reconnecting…";
  for (let attempt = 1; attempt <= RECONNECT_LIMIT && !state.ended; attempt += 1) {
    say(status, `Connection lost: reconnecting (attempt ${attempt})…`, "warning");
    await sleep(Math.min(1000 * attempt, 5000));
    try {
      state.live?.pc.close();
      await publishNow();
      break;
    } catch (error) {
      say(status, `Still offline: ${error.message}`, "warning");
    }
  }
  state.reconnecting = false;
}
window.addEventListener("online", () => {
  if (state.live && state.live.pc.connectionState !== "connected" && !state.ended) reconnect();
});

// Step 5: the live room.
function openSocket() {
  const socket = connect();
  socket.on("connect", () => { if (state.live) joinRoom().catch(() => {}); });
  socket.on("stream:viewers", ({ count }) => { $("#viewers").textContent = String(count); });
  socket.on("stream:chat", addChat);
  socket.on("stream:chat_batch", ({ messages }) => messages.forEach(addChat));
  socket.on("stream:chat_deleted", ({ ids }) => ids.forEach((id) => document.getElementById(`m-${id}`)?.remove()));
  socket.on("stream:reactions", ({ counts }) => {
    state.likes += Object.values(counts).reduce((a, b) => a + b, 0);
    $("#likes").textContent = String(state.likes);
  });
  socket.on("stream:status", ({ status: now }) => {
    document.body.dataset.status = now;
    if (now === "live" && !state.startedAt) state.startedAt = Date.now();
    // The server lost our session (the connection may not have noticed yet): publish again.
    if (now === "reconnecting" && state.live && !state.ended) reconnect();
    if (now === "ended") finish(null);
  });
  for (const event of ["auction:started", "auction:bid", "auction:closed"]) socket.on(event, heardAuction);
  socket.on("product:pinned", (pin) => { state.pins.set(pin.product.id, pin); renderProducts(); });
  socket.on("product:unpinned", ({ product_id: id }) => { state.pins.delete(id); renderProducts(); });
  socket.on("product:tagged", (tag) => {
    const item = state.products.get(tag.product_id);
    if (item) Object.assign(item, { x: tag.x, y: tag.y });
    renderProducts();
  });
  socket.on("product:stock", (change) => {
    const item = state.products.get(change.product_id);
    if (item) item.product.stock = change.stock;
    const pin = state.pins.get(change.product_id);
    if (pin?.sale) pin.sale.remaining = change.sale_remaining ?? pin.sale.remaining;
    renderProducts();
    desk.soon();
  });
  return socket;
}

async function joinRoom() {
  const room = await emit(state.socket, "stream:join", { stream_id: state.stream.id });
  $("#viewers").textContent = String(room.viewers);
  state.likes = Object.values(room.reactions).reduce((a, b) => a + b, 0);
  $("#likes").textContent = String(state.likes);
  $("#chat").replaceChildren();
  room.chat.forEach(addChat);
  state.products = new Map(room.products.map((item) => [item.product.id, item]));
  const pins = await api("GET", `/streams/${state.stream.id}/pins`);
  state.pins = new Map(pins.pinned.map((pin) => [pin.product.id, pin]));
  const auctions = await api("GET", `/streams/${state.stream.id}/auctions`);
  auctions.reverse().forEach(heardAuction);
  const fresh = await api("GET", `/streams/${state.stream.id}`);
  state.startedAt = fresh.started_at ? Date.parse(fresh.started_at) : state.startedAt || Date.now();
  renderProducts();
  await desk.load();
}

function addChat(message) {
  if (document.getElementById(`m-${message.id}`)) return;
  const mine = message.user.id === session.user?.id;
  const item = el("li", { id: `m-${message.id}` },
    el("strong", {}, message.user.display_name), " ", el("span", { class: "text" }, message.text),
    mine ? null : el("button", {
      type: "button", class: "round more", "aria-label": `Moderate ${message.user.display_name}`,
      onclick: () => moderateSheet(message),
    }, "⋯"));
  const chat = $("#chat");
  chat.append(item);
  while (chat.children.length > 200) chat.firstChild.remove();
  chat.scrollTop = chat.scrollHeight;
}

// Moderation of one chat line: Delete and Ban are asked once more; Mute is undone with Unmute.
function moderateSheet(message) {
  const sheet = $("#moderate");
  const name = message.user.display_name;
  $("#moderate-title").textContent = name;
  $("#moderate-text").textContent = message.text;
  const act = (event, payload, label, question) => async () => {
    sheet.close();
    if (question && !await confirmAction(question, label)) return;
    try {
      await emit(state.socket, event, { stream_id: state.stream.id, ...payload });
      say(status, `${label}: done.`);
    } catch (error) {
      say(status, `${label} failed: ${error.message}`, "error");
    }
  };
  $("#moderate-delete").onclick = act("chat:delete", { message_id: message.id }, "Delete", "Delete this message for everyone?");
  $("#moderate-mute").onclick = act("moderation:mute", { user_id: message.user.id }, "Mute");
  $("#moderate-ban").onclick = act("moderation:ban", { user_id: message.user.id }, "Ban", `Ban ${name} from this show? Their messages disappear.`);
  sheet.showModal();
}

$("#chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = event.target.text;
  if (!input.value.trim()) return;
  try {
    await emit(state.socket, "stream:chat", { stream_id: state.stream.id, text: input.value });
    input.value = "";
  } catch (error) {
    say(status, `Chat: ${error.message}`, "error");
  }
});

function renderProducts() {
  $("#live-products").replaceChildren(...[...state.products.values()].map((item) => productCard(item)));
  $("#tags").replaceChildren(...[...state.products.values()]
    .filter((item) => item.x !== null && item.x !== undefined)
    .map((item) => el("span", {
      class: `tag${state.pins.has(item.product.id) ? " pinned" : ""}`, dataset: { x: item.x, y: item.y },
    }, item.product.title)));
  placeTags();
}

function placeTags() {
  for (const tag of $("#tags").children) placeOnPicture(preview, tag, Number(tag.dataset.x), Number(tag.dataset.y));
}
onPictureChange(preview, placeTags);

async function call(label, fn) {
  try {
    await fn();
  } catch (error) {
    say(status, `${label}: ${error.message}`, "error");
  }
}

function setTagging(productId) {
  state.tagging = productId;
  $("#tag-hint").hidden = !productId;
  document.body.dataset.tagging = productId || "";
  renderProducts();
}

function productCard(item) {
  const { product } = item;
  const pin = state.pins.get(product.id);
  const auction = state.auctions.get(product.id);
  const act = (label, fn, cls = "small") => el("button", { type: "button", class: cls, onclick: fn }, label);
  return el("li", { class: `card${pin ? " pinned" : ""}`, dataset: { productId: product.id } },
    thumbnail(product),
    el("div", { class: "card-body" },
      el("strong", { class: "product-title" }, product.title),
      el("p", {}, money(product.price_cents, product.currency), " · ", el("span", { class: "stock" }, `${product.stock} in stock`)),
      pin?.sale ? el("p", { class: "sale-line" }, `Flash sale ${money(pin.sale.price_cents, product.currency)} · ${pin.sale.remaining} left`) : null,
      auction ? auctionLine(auction, state.auctionOffset) : null,
      el("div", { class: "row" },
        pin
          ? act("Unpin", () => call("Unpin", () => api("DELETE", `/streams/${state.stream.id}/pins/${product.id}`)), "small secondary")
          : act("Pin", () => call("Pin", () => api("POST", `/streams/${state.stream.id}/pins`, { product_id: product.id }))),
        act(state.tagging === product.id ? "Tap the picture…" : "Tag", () => setTagging(state.tagging === product.id ? null : product.id), "small secondary"),
        act("Sale", () => saleSheet(product), "small sale-button"),
        pin && auction?.state !== "open" ? act("Auction", () => auctionSheet(product), "small auction-button") : null)));
}

// An auction of one unit of a pinned product (docs/commerce.md#auctions).
function auctionSheet(product) {
  const form = $("#auction-form");
  $("#auction-title").textContent = `Auction: ${product.title}`;
  form.start.value = (product.price_cents / 200).toFixed(2);
  form.onsubmit = (event) => {
    event.preventDefault();
    $("#auction-sheet").close();
    const cents = (input) => Math.round(Number(input.value) * 100);
    call("Auction", () => api("POST", `/streams/${state.stream.id}/auctions`, {
      product_id: product.id,
      start_price_cents: cents(form.start),
      increment_cents: cents(form.increment),
      duration_seconds: Number(form.duration.value),
      soft_close_seconds: Number(form.soft.value),
      ...(form.reserve.value ? { reserve_cents: cents(form.reserve) } : {}),
    }));
  };
  $("#auction-sheet").showModal();
}

function heardAuction(auction) {
  if (auction.stream_id !== state.stream?.id) return;
  state.auctionOffset = offsetOf(auction);
  state.auctions.set(auction.product_id, newer(state.auctions.get(auction.product_id), auction));
  renderProducts();
  if (auction.state === "sold") desk.soon();
}
setInterval(() => { for (const auction of state.auctions.values()) auctionLine(auction, state.auctionOffset); }, 500);

// A flash sale: a pin with a sale price, units and a deadline, one per buyer.
function saleSheet(product) {
  const form = $("#sale-form");
  $("#sale-title").textContent = `Flash sale: ${product.title}`;
  form.price.value = (product.price_cents * 0.8 / 100).toFixed(2);
  form.quantity.max = String(Math.max(product.stock, 1));
  form.quantity.value = String(Math.min(5, Math.max(product.stock, 1)));
  form.onsubmit = (event) => {
    event.preventDefault();
    $("#sale-sheet").close();
    call("Flash sale", () => api("POST", `/streams/${state.stream.id}/pins`, {
      product_id: product.id,
      sale: {
        price_cents: Math.round(Number(form.price.value) * 100),
        quantity: Number(form.quantity.value),
        duration_seconds: Number(form.duration.value),
        per_buyer_limit: 1,
      },
    }));
  };
  $("#sale-sheet").showModal();
}

// Tagging: the tap's place on the picture itself (not the bars around it).
$("#stage").addEventListener("click", async (event) => {
  if (!state.tagging || !state.stream) return;
  const point = pointOnPicture(preview, event);
  if (!point) return say(status, "Tap on the picture itself, not the bars around it.", "warning");
  const productId = state.tagging;
  setTagging(null);
  const timestamp = Math.max(0, (Date.now() - (state.startedAt || Date.now())) / 1000);
  await call("Tag", () => api("POST", `/streams/${state.stream.id}/products/${productId}/tag`, { ...point, timestamp }));
});

// Connection quality from the publisher's own statistics.
let lastSent = null;
async function measure() {
  const pc = state.live?.pc;
  if (!pc || state.ended || state.reconnecting) return;
  const report = await pc.getStats();
  let bytes = 0;
  let rtt = null;
  let lost = 0;
  report.forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") bytes = s.bytesSent;
    if (s.type === "remote-inbound-rtp" && s.kind === "video") {
      rtt = s.roundTripTime ?? rtt;
      lost = s.fractionLost ?? lost;
    }
  });
  const now = performance.now();
  // A new session after a reconnection counts its bytes from zero again.
  const kbps = lastSent && bytes >= lastSent.bytes ? ((bytes - lastSent.bytes) * 8) / (now - lastSent.at) : 0;
  lastSent = { bytes, at: now };
  const label = pc.connectionState !== "connected" ? "poor"
    : (lost > 0.05 || (rtt ?? 0) > 0.4 || kbps < 100) ? "fair" : "good";
  document.body.dataset.quality = label;
  const parts = [label[0].toUpperCase() + label.slice(1), `${Math.round(kbps)} kb/s`];
  if (rtt !== null) parts.push(`${Math.round(rtt * 1000)} ms`);
  $("#quality").textContent = parts.join(" · ");
}
setInterval(() => measure().catch(() => {}), 2000);

// End of the show: summary from the analytics.
$("#end").addEventListener("click", async () => {
  if (!await confirmAction(`End “${state.stream.title}” for everyone? The show cannot be resumed.`, "End show")) return;
  try {
    finish(await api("POST", `/streams/${state.stream.id}/end`));
  } catch (error) {
    say(status, `Could not end the show: ${error.message}`, "error");
  }
});

async function finish(analytics) {
  if (state.ended && !analytics) return;
  state.ended = true;
  state.live?.stop();
  state.media?.getTracks().forEach((track) => track.stop());
  state.socket?.disconnect();
  const figures = analytics || await api("GET", `/streams/${state.stream.id}/analytics`);
  showSummary(figures);
}

function showSummary(a) {
  for (const section of document.querySelectorAll(".step")) section.hidden = true;
  $("#stage").hidden = true;
  $("#steps").hidden = true;
  $("#summary").hidden = false;
  // The orders go on after the show (from the replay, and to ship): the Orders sheet's desk moves here.
  $("#summary-orders").append($("#sales-desk"));
  desk.load();
  document.body.dataset.step = "summary";
  say(status, "The show has ended.");
  const minutes = a.duration_seconds ? `${Math.floor(a.duration_seconds / 60)} min ${Math.round(a.duration_seconds % 60)} s` : "—";
  const split = a.viewers_by_playback;
  const figures = [
    ["Duration", minutes], ["Peak viewers", a.peak_viewers], ["Unique viewers", a.unique_viewers],
    ["Reactions", a.total_likes], ["Chat messages", a.chat_messages_count],
    ["Average watch", `${Math.round(a.average_watch_time)} s`], ["WebRTC / HLS", `${split.webrtc} / ${split.hls}`],
  ];
  $("#summary-figures").replaceChildren(...figures.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, String(v)))));
  $("#summary-products").replaceChildren(...a.products.map((p) => el("tr", {},
    el("th", { scope: "row" }, p.title), el("td", {}, String(p.impressions)),
    el("td", {}, String(p.clicks)), el("td", {}, String(p.inquiries)), el("td", {}, String(p.orders)),
    el("td", {}, String(p.paid)), el("td", {}, money(p.revenue_cents)))));
}

// The live panel's sheets: orders, sharing.
for (const button of document.querySelectorAll("dialog [data-close]")) {
  button.addEventListener("click", () => button.closest("dialog").close());
}
$("#sales-button").addEventListener("click", () => {
  $("#sales").showModal();
  desk.load();
});

function watchUrl() {
  return `${location.origin}/watch/${encodeURIComponent(state.stream.id)}`;
}

function drawQr(canvas, text) {
  const { data, size } = encode(text, { border: 2 });
  const scale = Math.floor(canvas.width / size);
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.fillStyle = "#000";
  const offset = Math.floor((canvas.width - size * scale) / 2);
  data.forEach((row, y) => row.forEach((dark, x) => {
    if (dark) context.fillRect(offset + x * scale, offset + y * scale, scale, scale);
  }));
}

$("#share").addEventListener("click", () => {
  const url = watchUrl();
  $("#share-link").value = url;
  drawQr($("#qr"), url);
  $("#share-native").hidden = !navigator.share;
  say($("#copied"), "");
  $("#share-sheet").showModal();
});
$("#copy-link").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("#share-link").value);
    say($("#copied"), "Copied.", "ok");
  } catch {
    $("#share-link").select();
    say($("#copied"), "Select the link and copy it.");
  }
});
$("#share-native").addEventListener("click", () => {
  navigator.share({ title: state.stream.title, url: watchUrl() }).catch(() => {});
});

// The show's clock since it went live.
setInterval(() => {
  if (!state.startedAt || state.ended) return;
  const seconds = Math.max(0, Math.floor((Date.now() - state.startedAt) / 1000));
  const hours = Math.floor(seconds / 3600);
  const clock = `${Math.floor(seconds / 60) % 60}:${String(seconds % 60).padStart(2, "0")}`;
  $("#clock").textContent = hours ? `${hours}:${clock.padStart(5, "0")}` : clock;
}, 1000);

authForm($("#auth-form"), $("#auth-status"), signedIn);
if (session.token && session.user) {
  api("GET", "/me").then((user) => signedIn(user)).catch(() => { $("#auth").hidden = false; });
} else {
  $("#auth").hidden = false;
}
