// Follow a show's seller and be told when they go live: the follower count, Follow/Following,
// and "Notify me" (a Web Push subscription of this device, through static/sw.js).
import { $, api, session } from "./common.js";

const WORKER = "/static/sw.js";
const SUBSCRIBE_MS = 15000; // a browser without a push service may never answer
const state = { seller: null, signIn: null, onFollow: null };
export const BLOCKED = "Notifications are blocked for this site in the browser's settings.";

function urlBase64ToBytes(text) {
  const padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

// The worker's scope is /static/, not this page's, so navigator.serviceWorker.ready never
// resolves here: wait for this registration's own worker to be active.
async function activeRegistration() {
  const registration = await navigator.serviceWorker.register(WORKER);
  const worker = registration.installing || registration.waiting;
  if (worker && !registration.active) {
    await new Promise((resolve) => {
      worker.addEventListener("statechange", () => { if (worker.state === "activated") resolve(); });
    });
  }
  return registration;
}

function within(ms, promise) {
  const late = new Promise((_, reject) => { setTimeout(() => reject(new Error("no answer from the push service")), ms); });
  return Promise.race([promise, late]);
}

export function pushSupported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

function render() {
  const seller = state.seller;
  $("#seller").hidden = !seller;
  if (!seller) return;
  $("#seller-name").textContent = seller.display_name;
  $("#followers").textContent = `${seller.followers} follower${seller.followers === 1 ? "" : "s"}`;
  const follow = $("#follow");
  follow.textContent = seller.following ? "Following" : "Follow";
  follow.setAttribute("aria-pressed", String(seller.following));
  follow.hidden = Boolean(session.user && session.user.id === seller.id);
  const notify = $("#notify");
  notify.hidden = !seller.following || !pushSupported();
  notify.setAttribute("aria-label", `Notify me when ${seller.display_name} goes live`);
  notify.title = notify.getAttribute("aria-label");
}

async function load(sellerId) {
  state.seller = await api("GET", `/users/${encodeURIComponent(sellerId)}`);
  render();
}

async function toggleFollow() {
  if (!session.token) {
    state.signIn(toggleFollow);
    return;
  }
  const seller = state.seller;
  await api(seller.following ? "DELETE" : "POST", `/users/${encodeURIComponent(seller.id)}/follow`);
  await load(seller.id);
  if (state.seller.following) state.onFollow?.();
}

// The browser asks for permission, subscribes with the server's VAPID key, and the server keeps
// the subscription for this device; false when the browser's settings block notifications.
export async function subscribeThisDevice() {
  const registration = await activeRegistration();
  if (await Notification.requestPermission() !== "granted") return false;
  const { public_key: key } = await api("GET", "/push/vapid-key");
  const options = { userVisibleOnly: true, applicationServerKey: urlBase64ToBytes(key) };
  const subscription = await within(SUBSCRIBE_MS, registration.pushManager.subscribe(options));
  await api("POST", "/me/push-subscriptions", subscription.toJSON());
  return true;
}

// Turning it off for one seller: PUT /me/notifications/sellers.
async function notifyMe() {
  const line = $("#follow-status");
  try {
    if (!await subscribeThisDevice()) {
      line.textContent = BLOCKED;
      return;
    }
    await api("PUT", `/me/notifications/sellers/${encodeURIComponent(state.seller.id)}`, { push: true });
    line.textContent = `You'll get a notification when ${state.seller.display_name} goes live.`;
    $("#notify").setAttribute("aria-pressed", "true");
  } catch (error) {
    line.textContent = `This browser could not subscribe to notifications (${error.message}).`;
  }
}

/**
 * Shows the seller bar for ``sellerId``. ``signIn(then)`` opens the sign-in sheet and calls
 * ``then`` once signed in; ``onFollow`` runs after a follow (a followers-only show reloads).
 */
export function followBar(sellerId, { signIn, onFollow = null }) {
  state.signIn = signIn;
  state.onFollow = onFollow;
  $("#follow").onclick = () => toggleFollow().catch((error) => { $("#follow-status").textContent = error.message; });
  $("#notify").onclick = () => {
    if (!session.token) state.signIn(notifyMe);
    else notifyMe();
  };
  return load(sellerId).catch(() => {});
}

/** The account changed: the same seller, seen by whoever is signed in now. */
export function refreshFollow() {
  if (state.seller) load(state.seller.id).catch(() => {});
}
