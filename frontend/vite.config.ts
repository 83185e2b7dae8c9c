/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// Built into the Python package so a wheel serves the UI with no Node at run time.
export default defineConfig({
  plugins: [vue()],
  base: './',
  build: {
    outDir: '../src/rnnvis/web',
    emptyOutDir: true,
    chunkSizeWarningLimit: 800,
  },
  server: {
    proxy: { '/api': 'http://127.0.0.1:8731' },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
  },
})
