import { defineConfig } from 'vite';

// The offline playground (GraphiQL) is built from playground/ into
// ../dist-playground, which the Go binary embeds and serves at
// /playground; its assets under /playground/assets/.
export default defineConfig({
  root: 'playground',
  base: '/playground/',
  build: {
    outDir: '../../dist-playground',
    emptyOutDir: true,
    target: 'es2022',
    // Exact, reproducible output: CI rebuilds and compares.
    sourcemap: false,
    // GraphiQL's editor (Monaco) is large and loaded once; no point in
    // warning about it on every build.
    chunkSizeWarningLimit: 8192,
  },
  worker: { format: 'es' },
});
