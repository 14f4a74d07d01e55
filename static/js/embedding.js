// The embedded player: the watch page at /embed/{stream_id}, framed by a shop's page that the
// operator allowed (SHOPCAST_CORS_ORIGINS, written into this page's CSP frame-ancestors). It tells
// that page what happens (ready, product:click, add-to-cart, live, ended, error) and runs its
// commands (openProduct, signIn, signOut), over postMessage to and from that page's origin only.
// The shop's side is static/embed.js; docs/pages.md#embedding-the-player has the protocol.
import { session } from "./common.js";

const PROTOCOL = 1;
const FINISHED = new Set(["ended", "interrupted"]);
const MAX_TOKEN = 4096;
const active = location.pathname.startsWith("/embed/");
const options = new URLSearchParams(location.search);

/**
 * The framing page's origin as the browser reports it, never from our URL (which anyone can
 * write). The CSP has already refused any ancestor the operator did not allow.
 */
function parentOrigin() {
  if (!active || window.parent === window) return null;
  const origin = location.ancestorOrigins?.[0] ?? (document.referrer && new URL(document.referrer).origin);
  return origin && origin !== "null" ? origin : null;
}

const target = parentOrigin();
const told = { ready: false, status: null, phase: null };
let page = null; // watch.js's side of the commands: openProduct(id), signedIn(), signedOut()

function post(message) {
  if (target) window.parent.postMessage({ shopcast: PROTOCOL, ...message }, target);
}

function failure(code, message) {
  return Object.assign(new Error(message), { code });
}

/** A product as the shop's page sees it: enough to find it in its own catalogue and cart, and
 * its page on the shop (`checkout_url`), so that an add-to-cart can go to the shop's checkout. */
function describe(item) {
  const { product, sale } = item;
  return {
    id: product.id, title: product.title, price_cents: product.price_cents,
    sale_price_cents: sale?.price_cents ?? null, currency: product.currency,
    image_url: product.image_urls?.[0] ?? null, checkout_url: product.checkout_url ?? null,
  };
}

// `live` each time the show goes live (again after a reconnection), `ended` once it is over.
function tellPhase() {
  const now = told.status;
  const phase = now === "live" ? "live" : FINISHED.has(now) ? "ended" : now;
  if (!told.ready || phase === told.phase) return;
  told.phase = phase;
  if (phase === "live" || phase === "ended") post({ event: phase, data: { status: now } });
}

const COMMANDS = {
  openProduct({ product_id: id }) {
    if (typeof id !== "string" || !page.openProduct(id)) {
      throw failure("unknown_product", "No such product in this show");
    }
  },
  async signIn({ token }) {
    if (typeof token !== "string" || !token || token.length > MAX_TOKEN) {
      throw failure("invalid_token", "A Shopcast access token is a string");
    }
    const response = await fetch("/api/v1/me", { headers: { Authorization: `Bearer ${token}` } });
    if (!response.ok) throw failure("invalid_token", `The token was refused (HTTP ${response.status})`);
    const user = await response.json();
    session.save({ access_token: token, user });
    page.signedIn();
    return { user: { id: user.id, display_name: user.display_name } };
  },
  signOut() {
    session.clear();
    page.signedOut();
  },
};

async function run(event) {
  if (!target || event.source !== window.parent || event.origin !== target) return;
  const { shopcast, command, id, args } = event.data ?? {};
  if (shopcast !== PROTOCOL || typeof command !== "string") return;
  const reply = (answer) => post({ reply: id, ...answer });
  if (!Object.hasOwn(COMMANDS, command)) return reply({ ok: false, error: "unknown_command" });
  if (!told.ready) return reply({ ok: false, error: "not_ready", message: "Wait for the ready event" });
  try {
    reply({ ok: true, data: (await COMMANDS[command](args ?? {})) ?? null });
  } catch (error) {
    reply({ ok: false, error: error.code || "failed", message: error.message });
  }
}

if (active) {
  session.inMemory();
  document.body.dataset.embed = options.get("cart") === "host" ? "host-cart" : "yes";
  if (options.get("cart") === "host") document.getElementById("chat-sign-in").textContent = "Sign in to chat";
  window.addEventListener("message", run);
}

export const embed = {
  active,
  /** The shop's page takes Buy (`cart: "host"`): it gets `add-to-cart`, no Shopcast order. */
  hostCart: active && options.get("cart") === "host",
  /** What the watch page does for the commands. */
  serve(handlers) { page = handlers; },
  emit(event, data = {}) { post({ event, data }); },
  /** The room is joined (products and pins known): commands run from now on. */
  ready(stream) {
    if (told.ready) return;
    told.ready = true;
    post({ event: "ready", data: { show: { id: stream.id, title: stream.title, status: stream.status } } });
    tellPhase();
  },
  status(now) {
    told.status = now;
    tellPhase();
  },
  productClicked(item) { if (item) post({ event: "product:click", data: { product: describe(item) } }); },
  addToCart(item, quantity) { post({ event: "add-to-cart", data: { product: describe(item), quantity } }); },
};
