import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  root: join(here, 'src/viewer'),
  base: './',
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  server: { headers: isolation, host: '127.0.0.1' },
  preview: { headers: isolation, host: '127.0.0.1' },
  build: {
    outDir: join(here, 'dist/viewer'),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 2000,
    // The bundled dependencies' licenses (OpenSeadragon's BSD-3-Clause asks binary copies to carry
    // its notice; minification drops the source headers).
    license: { fileName: 'licenses.md' },
    // Two pages: the in-browser detector (index.html) and the deep-zoom slide viewer (slide.html).
    rollupOptions: {
      input: { main: join(here, 'src/viewer/index.html'), slide: join(here, 'src/viewer/slide.html') },
    },
  },
});
