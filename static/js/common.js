// Shared by the pages: the REST client, the signed-in account, the socket, DOM helpers.
// Text from users is only ever set with textContent (`el` never parses HTML).
import { io } from "/static/node_modules/socket.io-client/dist/socket.io.esm.min.js";

const TOKEN_KEY = "shopcast.token";
const USER_KEY = "shopcast.user";
const VIEWER_KEY = "shopcast.viewer";

function memoryStorage() {
  const items = new Map();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => { items.set(key, String(value)); },
    removeItem: (key) => { items.delete(key); },
  };
}

// localStorage, unless the browser refuses it (a third-party frame with storage blocked).
const stored = (() => {
  try {
    return window.localStorage;
  } catch {
    return memoryStorage();
  }
})();
let signIn = stored;

export const session = {
  get token() { return signIn.getItem(TOKEN_KEY); },
  get user() { return JSON.parse(signIn.getItem(USER_KEY) || "null"); },
  save(auth) {
    signIn.setItem(TOKEN_KEY, auth.access_token);
    signIn.setItem(USER_KEY, JSON.stringify(auth.user));
  },
  /** The account as the server last sent it (GET /me, PUT /me/delivery), for the same sign-in. */
  keepUser(user) {
    if (this.token) signIn.setItem(USER_KEY, JSON.stringify(user));
  },
  clear() {
    signIn.removeItem(TOKEN_KEY);
    signIn.removeItem(USER_KEY);
  },
  /**
   * The embedded player keeps its sign-in for the page's life only: the shop's page signs its
   * visitor in, and the next visitor of that shop on this browser never finds the last account.
   */
  inMemory() { signIn = memoryStorage(); },
  /** The key the server signed for this anonymous visitor (a reload is not a new viewer). */
  get viewerId() { return stored.getItem(VIEWER_KEY); },
  keepViewerId(id) {
    if (id) stored.setItem(VIEWER_KEY, id);
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.error || "http_error";
    this.details = body.details || {};
  }
}

/** Calls /api/v1 with the signed-in token; resolves with the JSON body (null for 204). */
export async function api(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (session.token) init.headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`/api/v1${path}`, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401 && session.token && !path.startsWith("/auth/")) session.clear();
    throw new ApiError(response.status, data);
  }
  return data;
}

/** Opens the Socket.IO connection as the signed-in account (or anonymously). */
export function connect() {
  return io(location.origin, {
    transports: ["websocket"],
    // A function, so a reconnect sends the key the server handed out meanwhile; sent signed in
    // too, so this browser stays one viewer when its viewer signs in.
    auth: (send) => send({ viewer_id: session.viewerId, ...(session.token ? { token: session.token } : {}) }),
  });
}

/** Emits with an acknowledgement; rejects with the refusal's message. */
export async function emit(socket, event, payload) {
  const ack = await socket.timeout(5000).emitWithAck(event, payload);
  if (!ack.ok) {
    const error = new Error(ack.message || ack.error);
    error.code = ack.error;
    throw error;
  }
  return ack;
}

/** Builds an element: attributes are set as properties or attributes, children as text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function money(cents, currency = "USD") {
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(cents / 100);
}

export function say(node, text, kind) {
  node.textContent = text;
  if (kind) node.dataset.kind = kind;
  else delete node.dataset.kind;
}

/** Sign-in and registration on one form: `submitter` decides which. */
export function authForm(form, status, onSignedIn) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const register = event.submitter?.value === "register";
    const body = { email: data.get("email"), password: data.get("password") };
    if (register) {
      body.display_name = data.get("display_name") || String(body.email).split("@")[0];
      if (data.get("role")) body.role = data.get("role");
    }
    say(status, register ? "Creating your account…" : "Signing in…");
    try {
      session.save(await api("POST", register ? "/auth/register" : "/auth/login", body));
      say(status, "");
      await onSignedIn(session.user);
    } catch (error) {
      say(status, error.message, "error");
    }
  });
}

export const SOLD_OUT = new Set(["out_of_stock", "sale_ended"]);
export const REACTIONS = ["❤️", "🔥", "👏", "😂", "😮", "💎"];

/**
 * Asks before a destructive action (End show, Ban, Delete): a modal <dialog> whose Cancel has
 * the focus, so a stray tap or Enter never ends a show. Resolves true when confirmed.
 */
export function confirmAction(question, action) {
  const cancel = el("button", { type: "button", class: "secondary", value: "cancel" }, "Cancel");
  const confirm = el("button", { type: "button", class: "danger", value: "confirm" }, action);
  const dialog = el("dialog", { class: "confirm", "aria-labelledby": "confirm-question" },
    el("p", { id: "confirm-question" }, question),
    el("div", { class: "row spread" }, cancel, confirm));
  document.body.append(dialog);
  return new Promise((resolve) => {
    const close = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    cancel.addEventListener("click", () => close(false));
    confirm.addEventListener("click", () => close(true));
    dialog.addEventListener("cancel", (event) => { event.preventDefault(); close(false); });
    dialog.showModal();
    cancel.focus();
  });
}

/** The product's first photo: an uploaded one once checked, else a picture URL it was given. */
function productPhoto(product) {
  const photo = product.media?.find((m) => m.kind === "image" && m.state === "ready" && m.url);
  return photo?.url || product.image_urls?.[0] || null;
}

/** The product's photo as a thumbnail, or null when it has none. */
export function thumbnail(product) {
  const src = productPhoto(product);
  return src ? el("img", { src, alt: "", class: "thumb" }) : null;
}
