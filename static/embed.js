/*
 * Shopcast's embeddable player, for a shop's own pages (docs/pages.md#embedding-the-player).
 *
 * One tag: the player takes the script's place (or fills data-target) and its events bubble
 * from its box as DOM events named "shopcast:<event>":
 *   <script src="https://shopcast.example/static/embed.js" data-show="SHOW_ID" data-cart="host"></script>
 * Or from the shop's script:
 *   const player = Shopcast.embed(element, { show: "SHOW_ID", cart: "host" });
 *   player.on("add-to-cart", ({ product, quantity }) => cart.add(product.id, quantity));
 *   (product: {id, title, price_cents, sale_price_cents, currency, image_url, checkout_url}, the
 *   last its page on the shop, so the shop's own checkout can take it.)
 *   player.openProduct(productId); player.signIn(accessToken); player.signOut();
 *
 * Commands go to the Shopcast origin this script came from, and only messages from that origin
 * and from this page's own player frames are heard. A classic script, so that it knows its src.
 */
(() => {
  "use strict";
  if (window.Shopcast?.embed) return window.Shopcast.autoEmbed(document.currentScript);

  const ORIGIN = new URL(document.currentScript.src).origin;
  const PROTOCOL = 1;
  const EVENTS = new Set(["ready", "product:click", "add-to-cart", "live", "ended", "error"]);
  const players = [];

  function later(error) {
    setTimeout(() => { throw error; }); // a shop's listener that throws breaks nothing of ours
  }

  class Player {
    constructor(element, options) {
      if (!(element instanceof Element)) throw new TypeError("Shopcast.embed: the first argument is an element");
      if (!options?.show) throw new TypeError("Shopcast.embed: options.show is the show's id");
      this.element = element;
      this.ready = null; // the ready event's data, once it came
      this.listeners = new Map();
      this.waiting = []; // commands sent before ready
      this.replies = new Map();
      this.nextId = 1;
      const frame = document.createElement("iframe");
      const query = options.cart === "host" ? "?cart=host" : "";
      frame.src = `${ORIGIN}/embed/${encodeURIComponent(options.show)}${query}`;
      frame.title = options.title || "Live shopping show";
      frame.allow = "autoplay; fullscreen; picture-in-picture";
      frame.allowFullscreen = true;
      frame.referrerPolicy = "strict-origin"; // the player learns our origin even under no-referrer
      frame.style.cssText = `display:block;width:100%;height:${options.height || "min(85vh, 44rem)"};border:0;background:#000`;
      this.frame = frame;
      element.append(frame);
      players.push(this);
    }

    /** Calls `listener(data)` on each `event`; returns a function that stops it. */
    on(event, listener) {
      if (!EVENTS.has(event)) throw new TypeError(`Shopcast: no event ${event}`);
      if (!this.listeners.has(event)) this.listeners.set(event, new Set());
      this.listeners.get(event).add(listener);
      if (event === "ready" && this.ready) queueMicrotask(() => listener(this.ready)); // late: still told
      return () => this.off(event, listener);
    }

    off(event, listener) {
      this.listeners.get(event)?.delete(listener);
    }

    /** Brings the product's card to the front, highlighted. Rejects with code unknown_product. */
    openProduct(productId) {
      return this.command("openProduct", { product_id: String(productId) });
    }

    /** Signs the viewer in with a Shopcast access token (see the docs). Rejects: invalid_token. */
    signIn(token) {
      return this.command("signIn", { token });
    }

    signOut() {
      return this.command("signOut", {});
    }

    destroy() {
      this.frame.remove();
      players.splice(players.indexOf(this), 1);
      for (const { reject } of this.replies.values()) reject(new Error("The player was removed"));
      this.replies.clear();
    }

    command(command, args) {
      return new Promise((resolve, reject) => {
        const id = this.nextId++;
        this.replies.set(id, { resolve, reject });
        const message = { shopcast: PROTOCOL, command, id, args };
        if (this.ready) this.send(message);
        else this.waiting.push(message);
      });
    }

    send(message) {
      this.frame.contentWindow?.postMessage(message, ORIGIN);
    }

    receive(message) {
      if (message.reply !== undefined) {
        const pending = this.replies.get(message.reply);
        this.replies.delete(message.reply);
        if (!pending) return;
        if (message.ok) pending.resolve(message.data);
        else pending.reject(Object.assign(new Error(message.message || message.error), { code: message.error }));
        return;
      }
      const { event, data } = message;
      if (!EVENTS.has(event)) return;
      if (event === "ready") {
        this.ready = data;
        this.waiting.splice(0).forEach((waiting) => this.send(waiting));
      }
      for (const listener of this.listeners.get(event) ?? []) {
        try {
          listener(data);
        } catch (error) {
          later(error);
        }
      }
      this.element.dispatchEvent(new CustomEvent(`shopcast:${event}`, { detail: data, bubbles: true }));
    }
  }

  window.addEventListener("message", (event) => {
    if (event.origin !== ORIGIN || event.data?.shopcast !== PROTOCOL) return;
    players.find((player) => player.frame.contentWindow === event.source)?.receive(event.data);
  });

  /** `<script data-show=...>`: a player in the script's place, or in `data-target`'s element. */
  function autoEmbed(script) {
    const { show, cart, height, target } = script?.dataset ?? {};
    if (!show) return;
    const place = () => {
      let box = target && document.querySelector(target);
      if (!box) {
        box = document.createElement("div");
        box.className = "shopcast-player";
        script.before(box);
      }
      Shopcast.embed(box, { show, cart, height });
    };
    if (target && document.readyState === "loading") document.addEventListener("DOMContentLoaded", place, { once: true });
    else place();
  }

  const Shopcast = {
    origin: ORIGIN,
    players,
    embed: (element, options) => new Player(element, options),
    autoEmbed,
  };
  window.Shopcast = Shopcast;
  autoEmbed(document.currentScript);
})();
