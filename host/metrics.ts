// Prometheus metrics in the text exposition format, served on a loopback HTTP port: request counts by method
// and status code, latency histograms, enclave health and statechains by state.
import { createServer, type Server } from "node:http";

type Labels = Record<string, string>;
const key = (labels: Labels) =>
  Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`)
    .join(",");

const LATENCY_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Metrics {
  private readonly counters = new Map<string, Map<string, number>>();
  private readonly histograms = new Map<
    string,
    Map<string, { buckets: number[]; sum: number; count: number }>
  >();
  private readonly gauges = new Map<
    string,
    () => Promise<Array<[Labels, number]>> | Array<[Labels, number]>
  >();
  private readonly help = new Map<string, [string, string]>();

  inc(name: string, labels: Labels, help: string, by = 1): void {
    this.help.set(name, ["counter", help]);
    const m = this.counters.get(name) ?? new Map<string, number>();
    this.counters.set(name, m);
    const k = key(labels);
    m.set(k, (m.get(k) ?? 0) + by);
  }

  observe(name: string, labels: Labels, seconds: number, help: string): void {
    this.help.set(name, ["histogram", help]);
    const m = this.histograms.get(name) ?? new Map();
    this.histograms.set(name, m);
    const k = key(labels);
    const h = m.get(k) ?? { buckets: LATENCY_BUCKETS_S.map(() => 0), sum: 0, count: 0 };
    LATENCY_BUCKETS_S.forEach((b, i) => {
      if (seconds <= b) h.buckets[i]! += 1;
    });
    h.sum += seconds;
    h.count += 1;
    m.set(k, h);
  }

  gauge(
    name: string,
    help: string,
    read: () => Promise<Array<[Labels, number]>> | Array<[Labels, number]>,
  ): void {
    this.help.set(name, ["gauge", help]);
    this.gauges.set(name, read);
  }

  async render(): Promise<string> {
    const out: string[] = [];
    const head = (name: string) => {
      const [type, help] = this.help.get(name)!;
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    for (const [name, m] of this.counters) {
      head(name);
      for (const [k, v] of m) out.push(`${name}{${k}} ${v}`);
    }
    for (const [name, m] of this.histograms) {
      head(name);
      for (const [k, h] of m) {
        const sep = k ? `${k},` : "";
        LATENCY_BUCKETS_S.forEach((b, i) => {
          out.push(`${name}_bucket{${sep}le="${b}"} ${h.buckets[i]}`);
        });
        out.push(
          `${name}_bucket{${sep}le="+Inf"} ${h.count}`,
          `${name}_sum{${k}} ${h.sum}`,
          `${name}_count{${k}} ${h.count}`,
        );
      }
    }
    for (const [name, read] of this.gauges) {
      head(name);
      for (const [labels, v] of await read()) out.push(`${name}{${key(labels)}} ${v}`);
    }
    return `${out.join("\n")}\n`;
  }

  /** Serves GET /metrics on host:port (loopback by default); resolves with the bound port. */
  serve(host: string, port: number): Promise<{ server: Server; port: number }> {
    const server = createServer((req, res) => {
      if (req.method !== "GET" || req.url !== "/metrics") {
        res.writeHead(404).end("not found\n");
        return;
      }
      this.render().then(
        (text) => res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(text),
        () => res.writeHead(500).end("metrics unavailable\n"),
      );
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        const addr = server.address();
        resolve({ server, port: typeof addr === "object" && addr ? addr.port : port });
      });
    });
  }
}
