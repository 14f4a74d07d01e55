// Renders /api/openapi.json with Swagger UI, served from our own node_modules.
const root = document.getElementById("api-docs");
if (typeof window.SwaggerUIBundle !== "function") {
  root.textContent = "Swagger UI is not installed: run `make run` (it installs the page libraries). "
    + "The raw document is at /api/openapi.json.";
} else {
  window.SwaggerUIBundle({ url: "/api/openapi.json", domNode: root, validatorUrl: null, deepLinking: true });
}
