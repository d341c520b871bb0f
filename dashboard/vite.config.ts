// Built into dist/, which the host embeds and serves at /_/ (host/build.rs,
// host/src/http/dashboard.rs). Nothing inline: the host's
// Content-Security-Policy allows scripts and styles from its origin only.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/_/",
  // JSX for Preact, compiled by Vite's own transformer (no Babel plugin).
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No inline module-preload polyfill and no data: URIs for assets.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: {
    // `npm run dev` against a running host (SELFDB_URL).
    proxy: Object.fromEntries(
      ["/api", "/rest", "/auth", "/storage", "/realtime", "/health"].map((path) => [
        path,
        { target: process.env.SELFDB_URL ?? "http://127.0.0.1:8000", ws: true },
      ]),
    ),
  },
});
