// The service worker of go-live notifications: shows a push (its payload is the server's JSON:
// title, body, url, tag, unsubscribe) and opens the show's watch page when it is tapped.
self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { body: event.data?.text() };
  }
  const actions = data.unsubscribe ? [{ action: "unsubscribe", title: "Turn off" }] : [];
  event.waitUntil(self.registration.showNotification(data.title || "Shopcast", {
    body: data.body || "",
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
