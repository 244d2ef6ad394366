import { defineConfig } from 'vite';

// The build goes to ../dist, which the Go binary embeds. During `npm run dev`
// the API calls go to a verifier started with `go run .` on :8080.
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
  server: {
    proxy: {
      '/query': { target: 'http://localhost:8080', ws: true },
      '/dev/mail': 'http://localhost:8080',
    },
  },
});
