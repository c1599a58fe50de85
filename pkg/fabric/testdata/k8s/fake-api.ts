// A scripted stand-in for kube-apiserver, for unit tests: there is no API server here, so each request is answered
// by the next step of a script with responses written in the API's shapes (nodelist.json, watch-*.jsonl). HTTP,
// or HTTPS with the self-signed apiserver.crt/key of this directory (valid until 2126, for 127.0.0.1 and localhost).
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import type { AddressInfo } from 'net';
import * as path from 'path';

export const TESTDATA = __dirname;
export const fixture = (name: string): string => fs.readFileSync(path.join(TESTDATA, name), 'utf8');

export interface Seen {
  url: string;
  auth?: string;
  method?: string;
  contentType?: string;
  /** the request body, as it arrives */
  body: string;
}

/** One step: answer this request (write and end, or leave it open, or destroy it). */
export type Step = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export const json =
  (body: string, status = 200): Step =>
  (_req, res) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(body);
  };

/** A watch response: each line of a .jsonl fixture as one chunk; then end, stay open, or drop the connection. */
export const stream =
  (lines: string, then: 'end' | 'hang' | 'drop'): Step =>
  (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    for (const l of lines.split('\n').filter(Boolean)) res.write(l + '\n');
    if (then === 'end') res.end();
    else if (then === 'drop') setTimeout(() => res.socket?.destroy(), 20);
  };

export class FakeApi {
  readonly seen: Seen[] = [];
  private server: http.Server;
  private steps: Step[] = [];

  constructor(tls = false) {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      const seen: Seen = { url: req.url ?? '', auth: req.headers.authorization, method: req.method, contentType: req.headers['content-type'], body: '' };
      this.seen.push(seen);
      req.setEncoding('utf8');
      req.on('data', (c: string) => (seen.body += c));
      const step = this.steps.shift();
      if (step) step(req, res);
      else json(JSON.stringify({ kind: 'Status', code: 500, message: 'fake api: no step left' }), 500)(req, res);
    };
    this.server = tls ? https.createServer({ key: fixture('apiserver.key'), cert: fixture('apiserver.crt') }, handler) : http.createServer(handler);
  }

  script(...steps: Step[]): this {
    this.steps.push(...steps);
    return this;
  }

  get left(): number {
    return this.steps.length;
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const tls = this.server instanceof https.Server;
    return `${tls ? 'https' : 'http'}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
