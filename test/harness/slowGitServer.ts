/**
 * A git "dumb HTTP" server on 127.0.0.1 that can stall: every request waits `delayMs` before it
 * is answered from the bare repository's files. It makes a fetch take as long as a test needs
 * (to kill a deploy in the middle of it) without a big repository. `close()` ends it and any
 * stalled request.
 */
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { run } from "./process";

export interface SlowGitServer {
  /** http://127.0.0.1:<port>/<name>.git: a valid --repo for the host script. */
  url: string;
  /** How many requests arrived so far (the fetch has started when > 0). */
  requests(): number;
  /** The Authorization headers of the requests so far (undefined: none sent). */
  authorizations(): (string | undefined)[];
  close(): Promise<void>;
}

/**
 * `auth` ("user:password"): every request without those Basic credentials is answered 401, as
 * a private repository's server does.
 */
export async function startSlowGitServer(
  bareRepo: string,
  delayMs: number,
  opts: { auth?: string } = {},
): Promise<SlowGitServer> {
  // The dumb protocol reads info/refs and objects/info/packs, which update-server-info writes.
  await run("git", ["--git-dir", bareRepo, "update-server-info"], {
    env: {
      ...process.env,
      GIT_CONFIG_COUNT: "1",
      GIT_CONFIG_KEY_0: "safe.directory",
      GIT_CONFIG_VALUE_0: "*",
    },
  });
  let count = 0;
  const authorizations: (string | undefined)[] = [];
  const pending = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    count++;
    authorizations.push(req.headers.authorization);
    if (
      opts.auth !== undefined &&
      req.headers.authorization !== `Basic ${Buffer.from(opts.auth).toString("base64")}`
    ) {
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="git"' }).end();
      return;
    }
    const timer = setTimeout(() => {
      pending.delete(timer);
      const rel = decodeURIComponent((req.url ?? "/").split("?")[0]).replace(/^\/[^/]+\.git\//, "");
      const file = path.resolve(bareRepo, rel);
      if (
        !file.startsWith(bareRepo + path.sep) ||
        !fs.existsSync(file) ||
        !fs.statSync(file).isFile()
      ) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "Content-Type": "application/octet-stream" });
      fs.createReadStream(file).pipe(res);
    }, delayMs);
    pending.add(timer);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/${path.basename(bareRepo)}`,
    requests: () => count,
    authorizations: () => [...authorizations],
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of pending) clearTimeout(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
