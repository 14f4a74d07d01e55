// Lists the shows that are live now; text from users is always set with textContent.
const list = document.getElementById("live");
const status = document.getElementById("status");

async function refresh() {
  try {
    const response = await fetch("/api/v1/streams?status=live");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const streams = await response.json();
    list.replaceChildren(...streams.map((stream) => {
      const item = document.createElement("li");
      const title = document.createElement("a");
      title.href = `/watch/${encodeURIComponent(stream.id)}`;
      title.textContent = stream.title;
      const seller = document.createElement("span");
      seller.textContent = ` by ${stream.owner.display_name}`;
      item.append(title, seller);
      return item;
    }));
    status.textContent = streams.length ? "" : "Nobody is live right now.";
  } catch (error) {
    status.textContent = `Could not load the shows (${error.message}).`;
  }
}

refresh();
setInterval(refresh, 15000);
