// The chain backends' HTTP client against a raw TCP server that plays the keep-alive race: it answers a request,
// keeps the connection, then drops it when the next request arrives on it, as a server closing an idle socket
// does. That request is sent again once, on a new connection; a request dropped on a new connection is not.
import assert from "node:assert/strict";
import net from "node:net";
import { after, test } from "node:test";
import { ChainError } from "../../chain/backend.ts";
import { HttpClient } from "../../chain/http.ts";

const OK = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";

/** A server answering the first `answered` requests of each connection, dropping the connection at the next. */
async function droppingServer(answered: number) {
  const seen = { connections: 0, requests: 0 };
  const server = net.createServer((socket) => {
    seen.connections++;
    let onThis = 0;
    socket.on("data", (d) => {
      // One request per chunk is enough for these small GETs; count request lines.
      const requests = d.toString("latin1").split("\r\n\r\n").length - 1;
      for (let i = 0; i < requests; i++) {
        seen.requests++;
        if (onThis++ < answered) socket.write(OK);
        else return void socket.resetAndDestroy();
      }
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`;
  return { seen, url, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const clients: HttpClient[] = [];
after(() => {
  for (const c of clients) c.close();
});

test("a request meeting a kept-alive socket the server dropped is sent once more, on a new connection", async () => {
  const server = await droppingServer(1);
  const client = new HttpClient();
  clients.push(client);
  try {
    assert.equal((await client.request(server.url, { timeoutMs: 5000, what: "first" })).text, "ok");
    assert.equal((await client.request(server.url, { timeoutMs: 5000, what: "second" })).text, "ok");
    assert.deepEqual(server.seen, { connections: 2, requests: 3 }, "the second request went out twice");
  } finally {
    client.close();
    await server.close();
  }
});

test("a request dropped on a new connection fails with a clear error and is not repeated", async () => {
  const server = await droppingServer(0);
  const client = new HttpClient();
  clients.push(client);
  try {
    await assert.rejects(
      client.request(server.url, { timeoutMs: 5000, what: "bitcoind getblockcount" }),
      (e) =>
        e instanceof ChainError && e.code === "unavailable" && /^bitcoind getblockcount: /.test(e.message),
    );
    assert.deepEqual(server.seen, { connections: 1, requests: 1 });
  } finally {
    client.close();
    await server.close();
  }
});
