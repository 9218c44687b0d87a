// Built by crates/hub/build.rs (`npm run build`) into the hub's OUT_DIR, or
// into web/dist when run by hand. The hub's CSP forbids inline scripts, so no
// module-preload polyfill (it is an inline script) and no inlined assets.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: process.env.TWINBAY_WEB_OUT || 'dist',
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    target: 'es2022',
    chunkSizeWarningLimit: 600,
    reportCompressedSize: false,
  },
  server: {
    // `npm run dev` with a hub on :7780 (`twinbay up`).
    proxy: { '/api': { target: 'http://127.0.0.1:7780', ws: true } },
  },
});
