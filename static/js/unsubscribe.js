// A notification's unsubscribe link: the page posts its token at once (one click for people;
// link scanners that only GET change nothing) and says what was turned off.
const result = document.getElementById("result");
const token = new URLSearchParams(location.search).get("token") || "";
const CHANNELS = { email: "emails", push: "push notifications" };

async function unsubscribe() {
  const response = await fetch(`/api/v1/unsubscribe?token=${encodeURIComponent(token)}`, { method: "POST" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    result.textContent = body.message || "This link could not be used.";
    result.dataset.kind = "error";
    return;
  }
  result.textContent = `Done: no more ${CHANNELS[body.channel]} when ${body.seller.display_name} goes live.`;
}

unsubscribe().catch(() => { result.textContent = "Could not reach Shopcast; try the link again."; });
