// A buyer's order once Buy reserved it: the hold's countdown, how to pay for it by the seller's
// checkout (pay_later: an invoice; shop: the product's page on the seller's shop; stripe: Stripe
// Checkout), the delivery details it ships to, and the words for where it stands. Shared by the
// watch page's cards and My orders (/orders). Text from users is only ever set with textContent.
import { api, el, money, say, session } from "./common.js";

// ISO 3166-1 alpha-2, named in the visitor's language by the browser (Intl.DisplayNames).
const COUNTRIES = `AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW`.split(/\s+/);

/** What an order costs, in its currency. */
export function orderTotal(order) {
  return money(order.unit_price_cents * order.quantity, order.currency);
}

// The hold: a reserved order's units go back at hold_expires_at (the server's sweeper says so).
function holdText(until) {
  const left = Math.max(0, Math.ceil((Date.parse(until) - Date.now()) / 1000));
  return left > 0 ? `Held for ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` : "Hold ending…";
}

export function holdLine(order) {
  return el("p", { class: "hold-line", dataset: { until: order.hold_expires_at } }, holdText(order.hold_expires_at));
}

/** Every hold countdown on the page, now. */
export function tickHolds(root = document) {
  for (const line of root.querySelectorAll(".hold-line")) line.textContent = holdText(line.dataset.until);
}

/** The product's page on the seller's shop, told which order it settles (`shopcast_order`). */
export function shopLink(checkoutUrl, orderId) {
  let url;
  try {
    url = new URL(checkoutUrl);
  } catch {
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return null;
  url.searchParams.set("shopcast_order", orderId);
  return url.href;
}

// Orders whose Stripe Checkout this page opened in another tab: their news (a hold about to run
// out given the time to pay) keeps saying where to pay.
const paying = new Set();
const IN_THE_TAB = "Pay in the new tab: this page says Paid once it is.";

/** How a reserved order gets paid, by the seller's checkout. */
export function payNote(checkout, product, order) {
  if (checkout === "stripe") return paying.has(order?.id) ? IN_THE_TAB : "Pay to confirm it.";
  if (checkout === "shop") return product?.checkout_url ? "Pay for it on the seller's shop." : "The seller will tell you how to pay.";
  return "The seller will send you an invoice.";
}

/** A reserved order's line on a card: what it costs and how it gets paid. */
export function howToPay(order, checkout, product) {
  return `Reserved: ${orderTotal(order)}. ${payNote(checkout, product, order)}`;
}

/** The Pay control of a reserved order (a button for Stripe, a link to the shop), or null. */
export function payAction(order, checkout, product, result) {
  if (order.status !== "reserved") return null;
  if (checkout === "stripe") {
    const button = el("button", { type: "button", class: "pay", onclick: () => payWithStripe([order.id], button, result) },
      `Pay ${orderTotal(order)}`);
    return button;
  }
  const href = checkout === "shop" && product?.checkout_url ? shopLink(product.checkout_url, order.id) : null;
  return href ? el("a", { class: "button pay", href, target: "_blank", rel: "noopener" }, "Pay on the shop") : null;
}

/**
 * Stripe Checkout for `orderIds` in a new tab, so the show plays on; the delivery details are
 * asked for first when the account has none. The tab opens within the tap (pop-up blockers let
 * that through) and goes to Stripe once the server made the session; no tab: this page goes.
 */
export async function payWithStripe(orderIds, button, result) {
  if (!session.user?.delivery && !(await askDelivery("Where should it go? Stripe takes the payment next."))) return;
  const tab = window.open("", "_blank");
  button.disabled = true;
  say(result, "Opening the payment page…");
  try {
    const checkout = await api("POST", "/checkout", { order_ids: orderIds });
    if (tab) {
      tab.opener = null;
      tab.location.replace(checkout.url);
      orderIds.forEach((id) => paying.add(id));
      say(result, IN_THE_TAB, "ok");
    } else {
      location.assign(checkout.url);
    }
  } catch (error) {
    tab?.close();
    say(result, error.message, "error");
    // The order has no details after all (this page's copy of the account was stale): ask once more.
    if (error.code === "delivery_required" && (await askDelivery("Where should it go?"))) say(result, "");
  } finally {
    button.disabled = false;
  }
}

const STATUS = { reserved: "Reserved", paid: "Paid ✓", shipped: "Shipped", cancelled: "Cancelled", expired: "Expired" };

/** Where the order stands, in a word or two. */
export function statusText(order) {
  if (order.status === "cancelled" && (order.paid_at || order.payment_method)) return "Cancelled · refunded";
  return STATUS[order.status] || order.status;
}

/** A parcel tracking link, when the seller gave one (https only). */
export function trackLink(order) {
  if (order.status !== "shipped" || !order.tracking_url?.startsWith("https://")) return null;
  return el("a", { class: "button secondary track", href: order.tracking_url, target: "_blank", rel: "noopener noreferrer" }, "Track");
}

export function deliveryText(delivery) {
  if (!delivery) return "";
  const { name, line1, line2, postal_code: postal, city, region, country } = delivery;
  return [name, line1, line2, `${postal} ${city}`, region, country].filter(Boolean).join(", ");
}

// The delivery details sheet: one form, built once per page, resolving with the saved account.
const FIELDS = [
  { name: "name", label: "Full name", autocomplete: "name", required: true, wide: true, message: "Enter the name to deliver to" },
  { name: "phone", label: "Phone (optional)", autocomplete: "tel", type: "tel", wide: true,
    message: "Enter a phone number (digits, spaces, +), or leave it empty", pattern: /^\+?[0-9 ()./-]{6,32}$/ },
  { name: "line1", label: "Street and number", autocomplete: "address-line1", required: true, wide: true, message: "Enter the street and number" },
  { name: "line2", label: "Flat, floor (optional)", autocomplete: "address-line2", wide: true },
  { name: "postal_code", label: "Postal code", autocomplete: "postal-code", required: true, message: "Enter the postal code" },
  { name: "city", label: "City", autocomplete: "address-level2", required: true, message: "Enter the city" },
  { name: "region", label: "Region (optional)", autocomplete: "address-level1" },
  { name: "country", label: "Country", autocomplete: "country", required: true, message: "Choose the country" },
];

function countryOptions() {
  let names = null;
  try {
    names = new Intl.DisplayNames(undefined, { type: "region" });
  } catch {
    names = { of: (code) => code };
  }
  const named = COUNTRIES.map((code) => [code, names.of(code) || code]).sort((a, b) => a[1].localeCompare(b[1]));
  return [el("option", { value: "" }, "Choose…"), ...named.map(([code, name]) => el("option", { value: code }, name))];
}

function field(spec) {
  const id = `delivery-${spec.name}`;
  const attrs = { id, name: spec.name, autocomplete: spec.autocomplete, required: spec.required, "aria-describedby": `${id}-error` };
  const control = spec.name === "country"
    ? el("select", attrs, countryOptions())
    : el("input", { ...attrs, type: spec.type || "text", inputmode: spec.type === "tel" ? "tel" : null });
  return el("div", { class: `field${spec.wide ? " wide" : ""}` },
    el("label", { for: id }, spec.label), control,
    el("p", { class: "field-error", id: `${id}-error` }, ""));
}

function localCountry() {
  const region = (navigator.language || "").split("-")[1]?.toUpperCase();
  return COUNTRIES.includes(region) ? region : "";
}

function deliverySheet() {
  const form = el("form", { class: "fields", novalidate: true }, FIELDS.map(field),
    el("div", { class: "row wide" },
      el("button", { type: "submit", class: "grow" }, "Save"),
      el("button", { type: "button", class: "secondary", value: "cancel" }, "Cancel")));
  const why = el("p", { class: "muted why" }, "");
  const status = el("p", { role: "alert" }, "");
  const close = el("button", { type: "button", class: "secondary round", "aria-label": "Close" }, "✕");
  const dialog = el("dialog", { id: "delivery", class: "sheet form-sheet", "aria-labelledby": "delivery-title" },
    el("div", { class: "row spread" }, el("h2", { id: "delivery-title" }, "Delivery details"), close),
    why, form, status);
  document.body.append(dialog);
  let settle = null;
  const done = (user) => {
    const resolve = settle;
    settle = null;
    if (dialog.open) dialog.close();
    resolve?.(user);
  };
  close.addEventListener("click", () => done(null));
  form.querySelector("button[value=cancel]").addEventListener("click", () => done(null));
  dialog.addEventListener("close", () => done(null));

  const problems = (found) => {
    for (const spec of FIELDS) {
      const control = form.elements[spec.name];
      const text = found[spec.name] || "";
      control.toggleAttribute("aria-invalid", Boolean(text));
      form.querySelector(`#delivery-${spec.name}-error`).textContent = text;
    }
    const first = FIELDS.find((spec) => found[spec.name]);
    if (first) form.elements[first.name].focus();
    return Boolean(first);
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    const found = {};
    for (const spec of FIELDS) {
      const value = form.elements[spec.name].value.trim();
      if (value) body[spec.name] = value;
      else if (spec.required) found[spec.name] = spec.message;
      if (value && spec.pattern && !spec.pattern.test(value)) found[spec.name] = spec.message;
    }
    if (problems(found)) return say(status, "");
    say(status, "Saving…");
    try {
      const user = await api("PUT", "/me/delivery", body);
      session.keepUser(user);
      say(status, "");
      done(user);
    } catch (error) {
      const refused = {};
      for (const item of error.details?.errors || []) {
        const spec = FIELDS.find((f) => f.name === item.field);
        if (spec) refused[spec.name] = spec.message || item.message;
      }
      say(status, problems(refused) ? "Check the fields marked above." : error.message, "error");
    }
  });

  return (reason) => {
    const saved = session.user?.delivery || {};
    for (const spec of FIELDS) form.elements[spec.name].value = saved[spec.name] || "";
    form.elements.country.value = saved.country || localCountry();
    problems({});
    say(status, "");
    say(why, reason || "Where your orders go, and how the seller reaches you about them.");
    dialog.showModal();
    return new Promise((resolve) => { settle = resolve; });
  };
}

let openSheet = null;

/** Asks for the delivery details on a bottom sheet: resolves with the account once saved
 * (which also fills the buyer's reserved orders that had none), or null if dismissed. */
export function askDelivery(reason) {
  openSheet ??= deliverySheet();
  return openSheet(reason);
}
