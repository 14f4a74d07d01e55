// Live auctions on the watch page (and the embedded player, which is this page): the running
// auction's high bid, its bidder, the countdown on the server's clock and its extensions, and a
// Bid button; the page reports how far behind live it plays, which the server may only lower
// (docs/commerce.md#the-latency-fair-close). Names from users are only set with textContent.
import { $, api, el, money, say, session } from "./common.js";

const REPORT_EVERY_MS = 3000;
const EXTENDED_MS = 2500;

/** The newer of two views of one auction: the one with more bids, or closed over open. */
export function newer(known, incoming) {
  if (!known || known.id !== incoming.id) return incoming;
  if (incoming.state !== "open") return incoming;
  if (known.state !== "open") return known;
  return incoming.bids >= known.bids ? incoming : known;
}

/** Seconds left on the server's clock (`offset`: server minus this device, in ms). */
export function secondsLeft(auction, offset) {
  return Math.max(0, Math.ceil((Date.parse(auction.ends_at) - (Date.now() + offset)) / 1000));
}

export function clockText(seconds) {
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

export const offsetOf = (auction) => Date.parse(auction.now) - Date.now();

/** The watch page's auction panel in `box`; `title(productId)` names the product. */
export function auctionPanel(box, { streamId, title, signIn, onChange }) {
  const state = { auction: null, offset: 0, mine: 0, extendedUntil: 0, socket: null };
  const high = el("p", { class: "auction-high" });
  const clock = el("p", { class: "auction-clock", "aria-live": "off" });
  const anonymous = el("input", { type: "checkbox", name: "anonymous" });
  const bid = el("button", { type: "button", class: "bid", onclick: () => (session.token ? place() : signIn()) }, "Bid");
  const result = el("p", { class: "result", role: "status" });
  const name = el("strong", { class: "product-title" });
  const actions = el("div", { class: "auction-actions" }, bid,
    el("label", { class: "auction-anonymous" }, anonymous, " Bid as “a bidder”"));
  box.replaceChildren(
    el("div", { class: "auction-head" }, el("span", { class: "badge auction-badge" }, "Auction"), name, clock),
    high, actions, result);

  function render() {
    const a = state.auction;
    box.hidden = !a;
    if (!a) return;
    box.dataset.state = a.state;
    name.textContent = title(a.product_id) || "";
    const by = a.high_bidder ? ` · ${a.high_bidder}` : "";
    high.textContent = a.high_cents
      ? `High bid ${money(a.high_cents, a.currency)}${by}`
      : `Starts at ${money(a.start_price_cents, a.currency)}`;
    const open = a.state === "open";
    actions.hidden = !open;
    if (open && state.mine && a.high_cents > state.mine) say(result, "You were outbid.", "error");
    bid.textContent = session.token ? `Bid ${money(a.next_min_cents, a.currency)}` : "Sign in to bid";
    if (!open) {
      clock.textContent = a.state === "sold" ? "Sold" : "Not sold";
      const won = a.state === "sold" && state.mine === a.high_cents;
      if (won) say(result, `You won at ${money(a.high_cents, a.currency)}: your order is reserved.`, "ok");
      else if (a.state === "unsold") say(result, a.reserve_met ? "No bids: not sold." : "The reserve was not met: not sold.");
    }
    tick();
  }

  function tick() {
    const a = state.auction;
    if (!a || a.state !== "open") return;
    const left = secondsLeft(a, state.offset);
    const extended = Date.now() < state.extendedUntil ? " · extended" : "";
    clock.textContent = left > 0 ? `${clockText(left)}${extended}` : "Closing…";
    box.dataset.extended = extended ? "yes" : "";
  }

  function heard(auction) {
    if (auction.stream_id !== streamId) return;
    state.offset = offsetOf(auction);
    const before = state.auction;
    state.auction = newer(before, auction);
    if (auction.extended) state.extendedUntil = Date.now() + EXTENDED_MS;
    render();
    if (before?.id !== state.auction.id || before?.state !== state.auction.state) onChange(state.auction);
  }

  async function place() {
    const a = state.auction;
    if (!a || !session.token || !state.socket) return;
    bid.disabled = true;
    const payload = {
      stream_id: streamId, auction_id: a.id, amount_cents: a.next_min_cents,
      anonymous: anonymous.checked, ...(a.high_cents ? { seen_cents: a.high_cents } : {}),
    };
    try {
      const ack = await state.socket.timeout(5000).emitWithAck("auction:bid", payload);
      if (ack.ok) {
        state.mine = ack.amount_cents;
        heard(ack.auction);
        say(result, ack.late ? "Your bid counted: you bid before the close, as you saw it." : "You are the high bidder.", "ok");
      } else {
        say(result, refusal(ack), "error");
        if (ack.next_min_cents) state.auction = { ...a, high_cents: ack.high_cents, next_min_cents: ack.next_min_cents, ends_at: ack.ends_at ?? a.ends_at };
        render();
      }
    } catch {
      say(result, "No answer: check your connection.", "error");
    } finally {
      bid.disabled = false;
    }
  }

  setInterval(tick, 250);
  setInterval(() => { if (state.auction?.state === "open") reportDelay(streamId); }, REPORT_EVERY_MS);

  return {
    /** The page's (new) socket: its auction events come here. */
    attach(socket) {
      state.socket = socket;
      for (const event of ["auction:started", "auction:bid", "auction:closed"]) socket.on(event, heard);
    },
    async load() {
      const auctions = await api("GET", `/streams/${encodeURIComponent(streamId)}/auctions`);
      const latest = auctions[0];
      if (latest) heard(latest);
      else render();
    },
    render,
  };
}

function refusal(ack) {
  const messages = {
    too_low: "Someone bid first: try the new amount.",
    outbid: "Someone bid higher first: try the new amount.",
    closed: "Too late: the auction is over.",
    unseen: "That bid came after the close as you saw it.",
    rate_limited: "Slow down a little.",
    sign_in_required: "Sign in to bid.",
  };
  return messages[ack.error] || ack.message || ack.error;
}

/** Tell the server how far behind live this page plays; it grants no more than it can prove. */
async function reportDelay(streamId) {
  const player = window.shopcastPlayer;
  if (!session.token || !player) return;
  let body = null;
  if (player.mode === "hls" && Number.isFinite(player.hls?.latency)) {
    body = { playback: "hls", latency: Math.max(0, player.hls.latency) };
  } else if (player.mode === "webrtc" && player.pc) {
    body = await webRtcDelay(player);
  }
  if (body) await api("POST", `/streams/${encodeURIComponent(streamId)}/delay`, body).catch(() => {});
}

async function webRtcDelay(player) {
  let rtt = null;
  let jitter = null;
  for (const report of (await player.pc.getStats()).values()) {
    if (report.type === "candidate-pair" && report.nominated && report.currentRoundTripTime !== undefined) rtt = report.currentRoundTripTime;
    if (report.type === "inbound-rtp" && report.kind === "video" && report.jitterBufferEmittedCount) {
      jitter = report.jitterBufferDelay / report.jitterBufferEmittedCount;
    }
  }
  if (rtt === null) return null;
  const sessionId = String(player.session || "").split("/").pop() || undefined;
  return { playback: "webrtc", latency: rtt / 2 + (jitter ?? 0), rtt, ...(jitter === null ? {} : { jitter }), session_id: sessionId };
}

/** The studio's line on a product card for its running auction. */
export function auctionLine(auction, offset) {
  const high = auction.high_cents
    ? `${money(auction.high_cents, auction.currency)}${auction.high_bidder ? ` · ${auction.high_bidder}` : ""}`
    : `starts ${money(auction.start_price_cents, auction.currency)}`;
  const when = auction.state === "open"
    ? (secondsLeft(auction, offset) > 0 ? clockText(secondsLeft(auction, offset)) : "closing…")
    : auction.state === "sold" ? "sold" : "not sold";
  const node = $(`[data-auction="${auction.id}"]`);
  const text = `Auction ${high} · ${auction.bids} bid${auction.bids === 1 ? "" : "s"} · ${when}`;
  if (node) node.textContent = text;
  return el("p", { class: "auction-line", dataset: { auction: auction.id } }, text);
}
