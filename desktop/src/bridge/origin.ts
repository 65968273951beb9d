// Which requests count as coming from our own page. A page on another site can open a
// WebSocket to 127.0.0.1 (browsers allow it) and a DNS-rebinding page can even make its
// requests look same-site, so both the Origin and the Host header are checked.

export function allowedHosts(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
}

export function allowedOrigins(port: number): Set<string> {
  return new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`]);
}
