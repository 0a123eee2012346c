// The API reference: Swagger UI (swagger-ui-dist, served from node_modules)
// over each function's own OpenAPI document, as the inbox rewrites it to call
// the local stack through the inbox's same-origin proxy.
"use strict";

const FUNCTIONS = ["notify", "hooks", "dispatch", "health", "metrics"];

// deno-lint-ignore no-undef
globalThis.ui = SwaggerUIBundle({
  urls: FUNCTIONS.map((name) => ({ url: `/reference/${name}.json`, name })),
  "urls.primaryName": "notify",
  dom_id: "#swagger",
  deepLinking: true,
  tryItOutEnabled: true,
  // deno-lint-ignore no-undef
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout",
});
