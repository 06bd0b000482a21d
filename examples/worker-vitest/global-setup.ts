// Starts one throw-away tristore for the whole test run and hands its URLs to the pool
// config (vitest.config.ts) and to the tests through `provide` / `inject`.
//
// `--ephemeral` keeps its data in a temporary directory that tristore removes on exit;
// `--port 0 --s3-port 0` pick free ports, read back from the banner; `--config` provisions
// the D1 database (migrated), the Vectorize index (with its metadata indexes) and the R2
// bucket that wrangler.jsonc declares, and maps their binding names.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

const root = fileURLToPath(new URL(".", import.meta.url));

export default async function setup({ provide }: TestProject) {
  const bin = process.env.TRISTORE_BIN || "tristore";
  const args = ["serve", "--ephemeral", "--port", "0", "--s3-port", "0", "--config", "wrangler.jsonc"];
  const log = createWriteStream(process.env.TRISTORE_LOG || `${root}.tristore-test.log`);
  const tristore = spawn(bin, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  tristore.stdout.pipe(log, { end: false });
  tristore.stderr.pipe(log, { end: false });

  const banner = await new Promise<string>((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => fail(new Error("no banner within 60 s")), 60_000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      tristore.kill("SIGTERM");
      reject(new Error(`${bin} ${args.join(" ")}: ${e.message}\nstdout:\n${out}\nstderr:\n${err}`));
    };
    tristore.on("error", (e) => fail(new Error(`cannot start it (set TRISTORE_BIN to the binary): ${e.message}`)));
    tristore.on("exit", (code, signal) => fail(new Error(`exited (${signal ?? code}) before printing its banner`)));
    tristore.stderr.on("data", (d) => (err += d));
    tristore.stdout.on("data", (d) => {
      out += d;
      if (/^Remote bindings: /m.test(out)) {
        clearTimeout(timer);
        tristore.removeAllListeners("exit");
        resolve(out);
      }
    });
  });
  const line = (label: string) => {
    const m = banner.match(new RegExp(`^${label}:\\s+(http://\\S+)`, "m"));
    if (!m) throw new Error(`no "${label}:" line in tristore's banner:\n${banner}`);
    return m[1];
  };
  const api = line("Cloudflare API"); //         http://127.0.0.1:P/client/v4
  const s3 = line("R2 S3 API"); //               http://127.0.0.1:Q
  const remoteBindings = line("Remote bindings"); // http://127.0.0.1:P/cdn-cgi/tristore/remote-bindings

  provide("tristore", { api, s3, remoteBindings, reset: new URL("/cdn-cgi/tristore/reset", api).href });

  return async () => {
    if (tristore.exitCode !== null || tristore.signalCode !== null) {
      throw new Error(`tristore died during the run (${tristore.signalCode ?? tristore.exitCode}); see its log`);
    }
    const exited = new Promise((r) => tristore.once("exit", r));
    tristore.kill("SIGTERM"); // and wait, so that --ephemeral has removed its directory
    await exited;
    log.end();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    tristore: {
      /** The Cloudflare REST API base, `http://127.0.0.1:P/client/v4`. */
      api: string;
      /** R2's S3 API, path style. */
      s3: string;
      /** Miniflare's remote-bindings proxy route: one URL for every binding. */
      remoteBindings: string;
      /** `POST` empties every resource wrangler.jsonc declares. */
      reset: string;
    };
  }
}
