// A seller's page (/s/<handle>): who they are, follow, and their live, upcoming and past shows.
import { $, api, say, session } from "./common.js";
import { fillSection } from "./showcards.js";

const handle = decodeURIComponent(location.pathname.split("/").pop());
const status = $("#status");
const follow = $("#follow");
let profile = null;

function show() {
  $("#name").textContent = profile.display_name;
  document.title = `${profile.display_name} · Shopcast`;
  $("#followers").textContent = `${profile.followers} follower${profile.followers === 1 ? "" : "s"}`;
  const self = session.user?.id === profile.id;
  follow.hidden = self;
  follow.textContent = profile.following ? "Following" : "Follow";
  follow.setAttribute("aria-pressed", String(profile.following));
  follow.classList.toggle("secondary", profile.following);
}

follow.addEventListener("click", async () => {
  if (!session.token) {
    say(status, "Sign in on a show's page to follow sellers.", "error");
    return;
  }
  try {
    await api(profile.following ? "DELETE" : "POST", `/users/${encodeURIComponent(profile.id)}/follow`);
    profile = await api("GET", `/sellers/${encodeURIComponent(handle)}`);
    show();
  } catch (error) {
    say(status, error.message, "error");
  }
});

async function load() {
  try {
    profile = await api("GET", `/sellers/${encodeURIComponent(handle)}`);
    show();
    await Promise.all([
      fillSection($("#live"), { section: "live", seller: handle }, "Not live right now.", { seller: false }),
      fillSection($("#upcoming"), { section: "upcoming", seller: handle }, "No show planned.", { seller: false }),
      fillSection($("#replays"), { section: "replays", seller: handle }, "No past show yet.", { seller: false }),
    ]);
  } catch (error) {
    say(status, error.status === 404 ? "No seller has this address." : `Could not load the page (${error.message}).`, "error");
  }
}

load();
