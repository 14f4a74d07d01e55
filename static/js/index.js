// The home page: live now, upcoming and replays, and search over shows and products.
import { $, api, el, money, say, thumbnail } from "./common.js";
import { fillSection, showCard } from "./showcards.js";

const status = $("#status");

async function refresh() {
  try {
    await Promise.all([
      fillSection($("#live"), { section: "live" }, "Nobody is live right now."),
      fillSection($("#upcoming"), { section: "upcoming" }, "No show is planned yet."),
      fillSection($("#replays"), { section: "replays" }, "No replay yet."),
    ]);
    say(status, "");
  } catch (error) {
    say(status, `Could not load the shows (${error.message}).`, "error");
  }
}

async function search(words) {
  const found = await api("GET", `/search?${new URLSearchParams({ q: words })}`);
  $("#found-shows").replaceChildren(...found.shows.map((stream) => showCard(stream)));
  $("#found-products").replaceChildren(...found.products.map((product) => el(
    "li", { class: "catalogue-item" }, thumbnail(product), el("span", { class: "grow" }, product.title), el("span", { class: "muted" }, money(product.price_cents, product.currency)),
  )));
  $("#found-products-title").hidden = !found.products.length;
  $("#results").hidden = false;
  $("#sections").hidden = true;
  say(status, found.shows.length || found.products.length ? "" : `Nothing found for “${words}”.`);
}

$("#search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const words = $("#words").value.trim();
  if (!words) {
    $("#results").hidden = true;
    $("#sections").hidden = false;
    return;
  }
  try {
    await search(words);
  } catch (error) {
    say(status, `Could not search (${error.message}).`, "error");
  }
});

refresh();
setInterval(() => {
  if ($("#results").hidden) refresh();
}, 15000);
