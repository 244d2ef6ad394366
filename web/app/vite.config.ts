import { defineConfig } from 'vite';

// The build goes to ../dist, which the Go binary embeds. During `npm run dev`
// the API calls go to a verifier started with `go run .` on :8080, or
// wherever VERIFIER_URL says (HTTP_ADDR=:9000 go run . and
// VERIFIER_URL=http://localhost:9000 npm run dev).
const api = process.env.VERIFIER_URL ?? 'http://localhost:8080';

export default defineConfig({
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    target: 'es2022',
    // Exact, reproducible output: CI rebuilds and compares.
    sourcemap: false,
    // The one lazy chunk (German words) imports nothing: no preload helper
    // or polyfill needed in the bundle.
    modulePreload: false,
  },
  // The dev server pre-bundles what the app's page imports, not the
  // playground's (playground/index.html, built by
  // vite.playground.config.ts): scanning it too made `npm run dev` stop
  // at start, as Monaco's `?worker` imports cannot be pre-bundled.
  optimizeDeps: { entries: ['index.html'] },
  server: {
    proxy: {
      '/query': { target: api, ws: true },
      '/dev/mail': api,
    },
  },
});
