// The seller's orders once bought: who bought what and where it goes, the next step for each
// (mark paid, ship with a tracking link, cancel or refund), the show's sales summary and its CSV.
// The studio shows it in the Orders sheet during the show and in the summary after it.
import { $, api, confirmAction, el, money, say, session } from "./common.js";

const STATUS = { reserved: "Reserved", paid: "Paid", shipped: "Shipped", cancelled: "Cancelled", expired: "Expired", refunded: "Refunded" };
// What needs the seller first: to be paid or shipped, then shipped, then the closed ones.
const TURN = { reserved: 0, paid: 0, shipped: 1, cancelled: 2, expired: 2 };
const CLOSED = new Set(["cancelled", "expired"]);
const REFRESH_MS = 15000; // payments by Stripe or the shop reach no room: look again meanwhile

/**
 * The sales desk of one show. `streamId()` is the show's id (null before it exists),
 * `productTitle(id)` names a product, `payLater()` says whether the seller marks orders paid,
 * `onCount(n)` hears how many orders there are, `visible()` whether the desk is on screen.
 */
export function salesDesk({ streamId, productTitle, payLater, onCount, visible }) {
  const desk = { names: new Map(), timer: null, loading: null, again: false };
  const note = $("#sales-status");

  async function refresh(id) {
    try {
      const [orders, sales] = await Promise.all([
        api("GET", `/streams/${id}/orders`), api("GET", `/streams/${id}/sales`),
      ]);
      for (const c of sales.currencies) for (const p of c.by_product) desk.names.set(p.product_id, p.name);
      renderSummary(sales);
      renderOrders(orders);
      onCount(orders.length);
    } catch (error) {
      say(note, `Orders: ${error.message}`, "error");
    }
  }

  // One load at a time; a call during one loads once more after it, so nothing is missed.
  function load() {
    const id = streamId();
    if (!id) return Promise.resolve();
    if (desk.loading) {
      desk.again = true;
      return desk.loading;
    }
    desk.loading = (async () => {
      do {
        desk.again = false;
        await refresh(id);
      } while (desk.again);
    })().finally(() => { desk.loading = null; });
    return desk.loading;
  }

  // Orders come in bursts in a flash sale: one reload for all the stock events of half a second.
  function soon() {
    clearTimeout(desk.timer);
    desk.timer = setTimeout(load, 500);
  }
  setInterval(() => { if (document.visibilityState === "visible" && visible()) load(); }, REFRESH_MS);

  const titleOf = (productId) => productTitle(productId) || desk.names.get(productId) || "Product";

  function renderSummary(sales) {
    const root = $("#sales-summary");
    if (!sales.currencies.length) {
      root.replaceChildren(el("p", { class: "muted" }, "No sales yet."));
      return;
    }
    const several = sales.currencies.length > 1;
    root.replaceChildren(...sales.currencies.map((c) => {
      const cash = (cents) => money(cents, c.currency);
      const toShip = c.paid.orders - c.shipped.orders;
      const orders = (n) => `${n} ${n === 1 ? "order" : "orders"}`;
      const figures = [
        ["Gross", cash(c.gross.amount_cents), orders(c.gross.orders)],
        ["Paid", cash(c.paid.amount_cents), orders(c.paid.orders)],
        ["Pending", cash(c.pending.amount_cents), orders(c.pending.orders)],
        ["To ship", String(toShip), `${c.shipped.orders} sent`],
      ];
      return el("div", { class: "sales-currency", dataset: { currency: c.currency } },
        several ? el("h3", {}, c.currency) : null,
        el("dl", { class: "sales-figures" }, ...figures.map(([label, value, count]) => el("div", { dataset: { figure: label.toLowerCase().replace(" ", "-") } },
          el("dt", {}, label, el("span", { class: "count" }, count)), el("dd", {}, value)))),
        el("ul", { class: "by-product", "aria-label": `By product${several ? ` (${c.currency})` : ""}` },
          ...c.by_product.map((p) => el("li", { dataset: { productId: p.product_id } },
            el("strong", { class: "grow" }, p.name),
            el("span", {}, `${p.units} ${p.units === 1 ? "unit" : "units"} · ${cash(p.gross_cents)}`),
            el("span", { class: "muted" }, `paid ${cash(p.paid_cents)} · pending ${cash(p.pending_cents)}`)))));
    }));
  }

  function renderOrders(orders) {
    const list = $("#orders");
    const newest = orders.slice().reverse();
    newest.sort((a, b) => (TURN[a.status] ?? 2) - (TURN[b.status] ?? 2)); // stable: newest first in each
    list.replaceChildren(...newest.map(orderItem));
    if (!orders.length) list.append(el("li", { class: "muted" }, "No orders yet."));
  }

  function orderItem(order) {
    const title = titleOf(order.product_id);
    const total = money(order.unit_price_cents * order.quantity, order.currency);
    const name = order.buyer.display_name;
    const time = new Date(order.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    // A cancelled order that had been paid was refunded.
    const badge = order.status === "cancelled" && order.paid_at ? "refunded" : order.status;
    const closed = CLOSED.has(order.status);
    return el("li", { class: "sale-order", dataset: { status: order.status, orderId: order.id } },
      el("div", { class: "order-top" },
        el("strong", { class: "grow buyer" }, name),
        el("span", { class: "order-status", dataset: { status: badge } }, STATUS[badge] || badge),
        el("strong", { class: "order-total" }, total)),
      el("p", { class: "order-what" }, `${order.quantity} × ${title} · ${time}`,
        order.from_replay ? el("span", { class: "pill" }, "replay") : null),
      closed ? el("p", { class: "order-reach muted" }, order.buyer.email) : contact(order),
      order.status === "shipped" ? shippedLine(order) : null,
      actions(order, { name, title, total }));
  }

  function contactLines(order) {
    const d = order.delivery;
    if (!d) return [order.buyer.email];
    const place = [[d.postal_code, d.city].filter(Boolean).join(" "), d.region, d.country].filter(Boolean).join(", ");
    return [d.name, [d.line1, d.line2].filter(Boolean).join(", "), place, d.phone, order.buyer.email].filter(Boolean);
  }

  function contact(order) {
    const lines = contactLines(order);
    const copy = el("button", {
      type: "button", class: "small secondary copy", "aria-label": `Copy ${order.buyer.display_name}'s address`,
      onclick: () => copyText(lines.join("\n"), copy),
    }, "Copy");
    return el("div", { class: "order-contact" },
      el("address", { class: "grow" }, ...lines.map((line) => el("span", {}, line)),
        order.delivery ? null : el("span", { class: "muted" }, "No delivery address given")),
      copy);
  }

  function shippedLine(order) {
    const when = new Date(order.shipped_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
    return el("p", { class: "order-shipped" }, `Shipped ${when}`,
      order.tracking_url ? el("a", {
        class: "button small secondary", href: order.tracking_url, target: "_blank", rel: "noopener noreferrer",
      }, "Tracking") : null);
  }

  function actions(order, about) {
    const buttons = [];
    const button = (label, cls, fn) => el("button", {
      type: "button", class: `small ${cls}`, dataset: { action: label.toLowerCase().replace(" ", "-") },
      onclick: async (event) => {
        const target = event.currentTarget;
        target.disabled = true;
        try {
          await fn();
        } finally {
          target.disabled = false;
        }
      },
    }, label);
    if (order.status === "reserved") {
      if (payLater()) buttons.push(button("Mark paid", "", () => change(order, "pay", "Mark paid", "Marked paid")));
      else buttons.push(el("span", { class: "muted waiting" }, "Waiting for payment"));
      buttons.push(button("Cancel", "secondary", async () => {
        if (!await confirmAction(`Cancel ${about.name}'s order of ${order.quantity} × ${about.title}? The units go back to stock.`, "Cancel order")) return;
        await change(order, "cancel", "Cancel", "Cancelled");
      }));
    } else if (order.status === "paid") {
      buttons.push(button("Mark shipped", "", () => shipSheet(order, about)));
      buttons.push(button("Refund", "secondary", async () => {
        const how = order.payment_method === "stripe"
          ? `Stripe pays ${about.total} back to ${about.name}'s card`
          : `Pay ${about.total} back to ${about.name} yourself`;
        if (!await confirmAction(`Refund this order? ${how}; the order is cancelled and the units go back to stock.`, "Refund")) return;
        await change(order, "cancel", "Refund", "Refunded");
      }));
    }
    return buttons.length ? el("div", { class: "order-actions" }, ...buttons) : null;
  }

  async function change(order, verb, label, done) {
    try {
      await api("POST", `/orders/${order.id}/${verb}`);
      say(note, `${done}: ${order.buyer.display_name}'s order.`, "ok");
    } catch (error) {
      say(note, `${label}: ${error.message}`, "error");
    }
    await load();
  }

  // Shipping asks for the carrier's tracking link, which the buyer then sees; it may stay empty.
  function shipSheet(order, about) {
    const sheet = $("#ship-sheet");
    const form = $("#ship-form");
    const problem = $("#ship-status");
    $("#ship-what").textContent = `${order.quantity} × ${about.title} for ${about.name}`;
    form.reset();
    say(problem, "");
    form.onsubmit = async (event) => {
      event.preventDefault();
      const link = form.tracking_url.value.trim();
      if (link && !link.startsWith("https://")) {
        say(problem, "The tracking link must start with https://", "error");
        form.tracking_url.focus();
        return;
      }
      const submit = form.querySelector("button[type=submit]");
      submit.disabled = true;
      try {
        await api("POST", `/orders/${order.id}/ship`, { tracking_url: link || null });
        sheet.close();
        say(note, `Shipped: ${about.name}'s order.`, "ok");
        await load();
      } catch (error) {
        say(problem, error.message, "error");
      } finally {
        submit.disabled = false;
      }
    };
    sheet.showModal();
  }

  // The CSV needs the bearer token, so it is fetched here and handed to the browser as a file.
  async function downloadCsv() {
    const id = streamId();
    if (!id) return;
    say(note, "Preparing the CSV…");
    try {
      const response = await fetch(`/api/v1/streams/${id}/orders.csv`, { headers: { Authorization: `Bearer ${session.token}` } });
      if (!response.ok) throw new Error((await response.json().catch(() => ({}))).message || `HTTP ${response.status}`);
      const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "")?.[1] || "orders.csv";
      const url = URL.createObjectURL(await response.blob());
      const link = el("a", { href: url, download: name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      say(note, `Downloaded ${name}.`, "ok");
    } catch (error) {
      say(note, `CSV: ${error.message}`, "error");
    }
  }
  $("#download-csv").addEventListener("click", downloadCsv);
  $("#refresh-orders").addEventListener("click", load);

  return { load, soon };
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(button.previousElementSibling);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    button.textContent = "Selected";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
}

/**
 * The seller's choice of how buyers pay (PUT /me/checkout), as radios that save on change;
 * a refusal (Stripe not set up on this server) is said beside them and the choice goes back.
 */
export function checkoutChoice(fieldset, initial, onSaved) {
  const note = fieldset.querySelector("[role=status]");
  let saved = initial || "pay_later";
  const radios = [...fieldset.querySelectorAll("input[type=radio]")];
  const show = (value) => radios.forEach((radio) => { radio.checked = radio.value === value; });
  show(saved);
  for (const radio of radios) {
    radio.addEventListener("change", async () => {
      if (!radio.checked) return;
      say(note, "Saving…");
      try {
        const user = await api("PUT", "/me/checkout", { checkout: radio.value });
        saved = user.checkout;
        session.keepUser?.(user);
        onSaved(saved);
        say(note, "Saved.", "ok");
      } catch (error) {
        show(saved);
        say(note, error.code === "stripe_unavailable" ? error.message || "Stripe is not set up on this server." : `Not saved: ${error.message}`, "error");
      }
    });
  }
  return { set(value) { saved = value || "pay_later"; show(saved); } };
}
