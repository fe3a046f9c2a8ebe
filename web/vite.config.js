import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The server serves web/dist at /chat-demo/; `npm run dev` proxies the API to a local server.
export default defineConfig({
  base: '/chat-demo/',
  plugins: [react()],
  server: {
    proxy: {
      '/api': { target: 'http://127.0.0.1:8080', ws: true },
    },
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.js'],
  },
});
