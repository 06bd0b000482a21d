// Per-call latency of a Worker's bindings: D1 and R2 served by tristore (through
// Miniflare's remote-bindings proxy) next to Miniflare's own local D1 and R2, and
// Vectorize served by tristore, all in one Worker in one run.
// usage: node bench/worker_bindings.mjs --tristore BIN [--calls N] [--rounds R] [--vectors V]
// (miniflare from bench/node; bench/worker_bindings.sh installs it and builds BIN)
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, cpus } from "node:os";
import { join } from "node:path";

const here = new URL(".", import.meta.url).pathname;
const require = createRequire(join(process.env.MINIFLARE_NODE ?? join(here, "node"), "/"));
const { Miniflare } = require("miniflare");

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const BIN = arg("tristore", "target/release/tristore");
const CALLS = +arg("calls", 2000);
const ROUNDS = +arg("rounds", 5);
const VECTORS = +arg("vectors", 10000);
const DIMS = 768;
const ROWS = 10000;

// The Worker: /setup fills both sides; /loop makes n calls in batches of 10 and returns
// each batch's time per call. workerd's clock moves in whole milliseconds, so single
// calls cannot be timed inside the Worker, and timing them from Node would mostly
// measure Node's dispatch to the Worker (about 2.5 ms here); a batch of ten is timed to
// 0.1 ms per call.
const worker = `
const payload = (n) => { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = (i * 31) % 251; return b; };
let seed = 1;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
const unit = () => { const v = Array.from({ length: ${DIMS} }, rand); const n = Math.hypot(...v); return v.map((x) => x / n); };
const query = unit();
export default { async fetch(req, env) {
  const u = new URL(req.url);
  const side = u.searchParams.get("side");
  const DB = side === "tristore" ? env.DB : env.DB_LOCAL;
  const BUCKET = side === "tristore" ? env.BUCKET : env.BUCKET_LOCAL;
  if (u.pathname === "/setup") {
    for (const db of [env.DB, env.DB_LOCAL]) {
      await db.exec("CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
      await db.prepare("WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < ?) INSERT OR IGNORE INTO kv (k, v) SELECT x, 'row-' || x FROM s").bind(${ROWS}).run();
    }
    for (const b of [env.BUCKET, env.BUCKET_LOCAL]) for (let i = 0; i < 100; i++) await b.put("obj-" + i, payload(4096));
    for (let i = 0; i < ${VECTORS}; i += 500) {
      await env.VEC.upsert(Array.from({ length: Math.min(500, ${VECTORS} - i) }, (_, j) => ({ id: "v" + (i + j), values: unit() })));
    }
    return Response.json({ vectors: (await env.VEC.describe()).vectorCount });
  }
  const op = u.searchParams.get("op");
  const one = async (i) => {
    if (op === "d1_point") await DB.prepare("SELECT * FROM kv WHERE k = ?").bind(1 + (i * 7919) % ${ROWS}).first();
    else if (op === "d1_insert") await DB.prepare("INSERT INTO kv (v) VALUES (?)").bind("x" + i).run();
    else if (op === "r2_get") { const o = await BUCKET.get("obj-" + (i % 100)); await o.arrayBuffer(); }
    else if (op === "r2_put") await BUCKET.put("put-" + (i % 100), payload(4096));
    else if (op === "vectorize_query") await env.VEC.query(query, { topK: 10 });
  };
  const n = +u.searchParams.get("n");
  const batches = [];
  for (let i = 0; i < n; i += 10) {
    const t0 = Date.now();
    for (let j = i; j < i + 10; j++) await one(j);
    batches.push((Date.now() - t0) / 10);
  }
  return Response.json(batches);
} };`;

const waitFor = (child, re) => new Promise((ok, fail) => {
  let seen = "";
  child.stdout.on("data", (d) => { seen += d; const m = seen.match(re); if (m) ok(m); });
  child.on("exit", (code) => fail(new Error(`tristore exited ${code}: ${seen}`)));
});

const server = spawn(BIN, ["serve", "--ephemeral", "--port", "0", "--s3-port", "0"], { stdio: ["ignore", "pipe", "ignore"] });
const [, bindingsUrl] = await waitFor(server, /Remote bindings: (\S+)/);
// One URL for every binding, as Miniflare 5 requires; the query maps the names.
const url = new URL(`${bindingsUrl}?DB=metacogna&BUCKET=metacogna-vault&VEC=metacogna-index`);
const state = mkdtempSync(join(tmpdir(), "miniflare-bindings-bench-"));
const mf = new Miniflare({
  modules: true, script: worker, compatibilityDate: "2025-09-01",
  d1Persist: join(state, "d1"), r2Persist: join(state, "r2"),
  d1Databases: { DB: { id: "metacogna", remoteProxyConnectionString: url }, DB_LOCAL: "local-db" },
  r2Buckets: { BUCKET: { id: "metacogna-vault", remoteProxyConnectionString: url }, BUCKET_LOCAL: "local-bucket" },
  vectorize: { VEC: { index_name: "metacogna-index", remoteProxyConnectionString: url } },
});
try {
  const setup = await (await mf.dispatchFetch("http://bench/setup")).json();
  const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
  const median = (xs) => quantile(xs, 0.5);
  const runs = [["d1_point", "tristore"], ["d1_point", "miniflare"], ["d1_insert", "tristore"], ["d1_insert", "miniflare"],
    ["r2_get", "tristore"], ["r2_get", "miniflare"], ["r2_put", "tristore"], ["r2_put", "miniflare"], ["vectorize_query", "tristore"]];
  const results = Object.fromEntries(runs.map(([op, side]) => [`${op}/${side}`, { p50: [], p90: [], mean: [] }]));
  for (const [op, side] of runs) await mf.dispatchFetch(`http://bench/loop?op=${op}&side=${side}&n=50`); // warm up
  for (let round = 0; round < ROUNDS; round++) {
    // Every operation on both sides in each round, so that both see the same machine.
    for (const [op, side] of runs) {
      const batches = await (await mf.dispatchFetch(`http://bench/loop?op=${op}&side=${side}&n=${CALLS}`)).json();
      const r = results[`${op}/${side}`];
      r.p50.push(quantile(batches, 0.5));
      r.p90.push(quantile(batches, 0.9));
      r.mean.push(batches.reduce((a, b) => a + b, 0) / batches.length);
    }
  }
  const ms = (x) => x.toFixed(2);
  console.log(`# ${new Date().toISOString()}  ${cpus().length} x ${cpus()[0].model}  node ${process.version}  miniflare 4.20260730.0`);
  console.log(`# ${CALLS} sequential calls per run in batches of 10, ${ROUNDS} rounds, medians over rounds; Vectorize ${setup.vectors} x ${DIMS} cosine`);
  console.log("| operation | tristore p50 / p90 / mean (ms per call) | Miniflare local p50 / p90 / mean | ratio (p50, mean) |");
  console.log("| --- | --- | --- | --- |");
  for (const op of ["d1_point", "d1_insert", "r2_get", "r2_put", "vectorize_query"]) {
    const t = results[`${op}/tristore`], m = results[`${op}/miniflare`];
    const cell = (r) => r ? `${ms(median(r.p50))} / ${ms(median(r.p90))} / ${ms(median(r.mean))}` : "no local Vectorize";
    const ratio = m ? `${(median(t.p50) / median(m.p50)).toFixed(2)}x, ${(median(t.mean) / median(m.mean)).toFixed(2)}x` : "";
    console.log(`| ${op} | ${cell(t)} | ${cell(m)} | ${ratio} |`);
  }
} finally {
  await mf.dispose();
  server.kill("SIGTERM");
  rmSync(state, { recursive: true, force: true });
}
