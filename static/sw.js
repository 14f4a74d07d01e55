// The service worker of show notifications: shows a push (its payload is the server's JSON:
// title, body, at, url, tag, unsubscribe) and opens the show's watch page when it is tapped.
// `at` is a start time (a reminder, a move): shown in the device's own time zone.
self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { body: event.data?.text() };
  }
  const actions = data.unsubscribe ? [{ action: "unsubscribe", title: "Turn off" }] : [];
  const when = data.at
    ? new Date(data.at).toLocaleString([], { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" })
    : "";
  event.waitUntil(self.registration.showNotification(data.title || "Shopcast", {
    body: when ? `${data.body || ""} · ${when}` : data.body || "",
    tag: data.tag,
    icon: "/static/icon.svg",
    data: { url: data.url || "/", unsubscribe: data.unsubscribe },
    actions,
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const { url, unsubscribe } = event.notification.data || {};
  const target = event.action === "unsubscribe" ? unsubscribe : url;
  if (!target) return;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const open = windows.find((client) => client.url === target);
    return open ? open.focus() : self.clients.openWindow(target);
  })());
});
