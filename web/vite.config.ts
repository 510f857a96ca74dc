import { defineConfig } from 'vite';

/**
 * `npm run build:web`: web/ into web/dist, two pages (/ is index.html, /ops is
 * ops.html) and content-hashed files under assets/, which Caddy serves as
 * immutable (deploy/caddy/public-entry.caddy). Nothing inline: the pages' CSP
 * has no 'unsafe-inline'.
 */
const root = decodeURIComponent(new URL('.', import.meta.url).pathname);

export default defineConfig({
  root,
  base: '/',
  // Every file the pages use is imported and hashed; nothing is copied as is.
  publicDir: false,
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Small files inlined as data: URLs would need img-src data: in the CSP; keep them as files.
    assetsInlineLimit: 0,
    // Every browser the page supports has modulepreload; the polyfill is bytes for nothing.
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
    rollupOptions: {
      input: { chat: `${root}index.html`, ops: `${root}ops.html` },
    },
  },
});
