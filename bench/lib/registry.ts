/**
 * A local image registry for the "old way": Debian's `docker-registry` (the distribution
 * registry v2) on 127.0.0.1:<free port>, storing under a scratch directory, as a child process
 * that `stop()` ends. Docker allows plain HTTP to registries on 127.0.0.0/8 by default.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { getServed } from "../../test/harness/app";
import { findExecutable } from "../../test/harness/prerequisites";
import { freePort, sleep } from "../../test/harness/process";

export interface Registry {
  /** `127.0.0.1:<port>`, the prefix of image references pushed to it. */
  address: string;
  stop(): Promise<void>;
}

export async function startRegistry(dir: string): Promise<Registry> {
  const binary = findExecutable("docker-registry");
  if (!binary) throw new Error("docker-registry is missing: apt-get install docker-registry");
  fs.mkdirSync(path.join(dir, "storage"), { recursive: true });
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = path.join(dir, "config.yml");
    fs.writeFileSync(
      config,
      [
        "version: 0.1",
        "log:",
        "  level: error",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        `    rootdirectory: ${path.join(dir, "storage")}`,
        "  delete:",
        "    enabled: true",
        "http:",
        `  addr: 127.0.0.1:${port}`,
        "",
      ].join("\n"),
    );
    const child = spawn(binary, ["serve", config], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(killer);
      }
    };
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && child.exitCode === null) {
      const answer = await getServed(`http://127.0.0.1:${port}/v2/`, 1000);
      if (answer.status === 200) return { address: `127.0.0.1:${port}`, stop };
      await sleep(100);
    }
    await stop();
    if (attempt >= 3) {
      throw new Error(
        `docker-registry did not come up on 127.0.0.1:${port}:\n${stderr.slice(-2000)}`,
      );
    }
  }
}
