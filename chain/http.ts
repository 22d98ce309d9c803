// HTTP for the remote chain backends: node:http(s) with keep-alive agents that close() tears down (so a
// stopped backend leaves no sockets behind), a deadline per request, one retry when a kept-alive socket turns out
// closed, network failures mapped to ChainError.
import http from "node:http";
import https from "node:https";
import { ChainError } from "./backend.ts";

export interface HttpResponse {
  status: number;
  text: string;
}

export interface HttpRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
  /** Names the call in error messages. */
  what: string;
}

/** Errors of a request written to a socket the server had already closed. */
const STALE_SOCKET = new Set(["ECONNRESET", "EPIPE"]);

export class HttpClient {
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 8 });

  request(url: string, req: HttpRequest): Promise<HttpResponse> {
    const u = new URL(url);
    const secure = u.protocol === "https:";
    const mod = secure ? https : http;
    return new Promise((resolve, reject) => {
      let done = false;
      let current: http.ClientRequest | undefined;
      const finish = (err: Error | undefined, res?: HttpResponse) => {
        if (done) return;
        done = true;
        clearTimeout(deadline);
        if (err) reject(new ChainError("unavailable", `${req.what}: ${err.message}`));
        else resolve(res!);
      };
      // A deadline for the whole exchange (retry included), not just socket inactivity.
      const deadline = setTimeout(() => {
        finish(new Error(`no answer within ${req.timeoutMs} ms`));
        current?.destroy();
      }, req.timeoutMs);
      const attempt = (retried: boolean) => {
        let answered = false;
        const r = mod.request(
          u,
          {
            method: req.method ?? "GET",
            headers: {
              ...req.headers,
              ...(req.body !== undefined ? { "content-length": String(Buffer.byteLength(req.body)) } : {}),
            },
            agent: secure ? this.httpsAgent : this.httpAgent,
          },
          (res) => {
            answered = true;
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () =>
              finish(undefined, {
                status: res.statusCode ?? 0,
                text: Buffer.concat(chunks).toString("utf8"),
              }),
            );
            res.on("error", (err) => finish(new Error(`reading the response failed: ${err.message}`)));
          },
        );
        current = r;
        r.on("error", (err: NodeJS.ErrnoException) => {
          // A kept-alive socket the server closed while idle fails as the request goes out (the server never
          // read it): the race every keep-alive client has. Once, on a new socket, is the documented remedy.
          if (!done && !retried && !answered && r.reusedSocket && STALE_SOCKET.has(err.code ?? ""))
            attempt(true);
          else finish(err);
        });
        if (req.body !== undefined) r.write(req.body);
        r.end();
      };
      attempt(false);
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** Block events for backends without push notifications: polls the tip and reports every new height once. */
export class TipPoller {
  private readonly listeners = new Set<(height: number) => void>();
  private timer: NodeJS.Timeout | undefined;
  private last: number | undefined;
  private polling = false;

  constructor(
    private readonly tipHeight: () => Promise<number>,
    private readonly intervalMs: number,
    private readonly onError: (err: Error) => void = () => {},
  ) {}

  subscribe(listener: (height: number) => void): () => void {
    this.listeners.add(listener);
    if (!this.timer) {
      // The first poll only sets the baseline: listeners hear about blocks found after they subscribed.
      void this.poll();
      this.timer = setInterval(() => void this.poll(), this.intervalMs);
      this.timer.unref();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.last = undefined;
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const height = await this.tipHeight();
      if (this.last === undefined) this.last = height;
      else if (height < this.last) {
        // A reorganisation to a shorter chain: report the new tip once.
        this.last = height;
        this.emit(height);
      } else {
        while (this.last < height) this.emit(++this.last);
      }
    } catch (err) {
      this.onError(err as Error);
    } finally {
      this.polling = false;
    }
  }

  private emit(height: number): void {
    for (const l of [...this.listeners]) {
      try {
        l(height);
      } catch (err) {
        this.onError(err as Error);
      }
    }
  }
}
