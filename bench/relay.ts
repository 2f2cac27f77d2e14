/**
 * The reference: a bare `Deno.serve` WebSocket relay, written the way most
 * examples write one. No auth, no validation, no history: every text frame
 * a client sends goes to every other client of its room (`/?room=NAME`),
 * with one `send` per recipient.
 *
 * Usage: `deno run --allow-net=127.0.0.1 bench/relay.ts [PORT]` — prints
 * `relay listening on HOST:PORT`.
 *
 * @module
 */

/** Starts the relay on 127.0.0.1. */
export function startRelay(port = 0): Deno.HttpServer<Deno.NetAddr> {
  const rooms = new Map<string, Set<WebSocket>>();
  return Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen(addr) {
      // deno-lint-ignore no-console
      console.log(`relay listening on ${addr.hostname}:${addr.port}`);
    },
  }, (req) => {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("relay: connect with a WebSocket\n", { status: 426 });
    }
    const room = new URL(req.url).searchParams.get("room") ?? "general";
    const { socket, response } = Deno.upgradeWebSocket(req);
    let members = rooms.get(room);
    if (!members) rooms.set(room, members = new Set());
    const peers = members;
    socket.onopen = () => peers.add(socket);
    socket.onmessage = (e) => {
      for (const peer of peers) {
        if (peer !== socket && peer.readyState === WebSocket.OPEN) peer.send(e.data);
      }
    };
    socket.onclose = () => {
      peers.delete(socket);
      if (peers.size === 0 && rooms.get(room) === peers) rooms.delete(room);
    };
    return response;
  });
}

if (import.meta.main) {
  startRelay(Number(Deno.args[0] ?? 0));
}
