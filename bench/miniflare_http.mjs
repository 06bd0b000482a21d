// Miniflare 4 serving the D1 and R2 work of `tristore bench http` through its bindings,
// so both servers are measured by the same HTTP load generator in the same run.
// usage: node bench/miniflare_http.mjs [port]   (miniflare from bench/node, see http_vs_miniflare.sh)
// State persists to a temporary directory, as tristore's does: both pay for durability.
import { createRequire } from "node:module";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const here = new URL(".", import.meta.url).pathname;
const require = createRequire(join(process.env.MINIFLARE_NODE ?? join(here, "node"), "/"));
const { Miniflare } = require("miniflare");

const worker = `
const json = (x, status = 200) => new Response(JSON.stringify(x), { status, headers: { "content-type": "application/json" } });
export default { async fetch(req, env) {
  const u = new URL(req.url), p = u.pathname;
  if (p === "/setup") {
    const rows = +u.searchParams.get("rows"), objects = +u.searchParams.get("objects");
    await env.DB.exec("CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    await env.DB.prepare("WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < ?) INSERT OR IGNORE INTO kv (k, v) SELECT x, 'row-' || x FROM s").bind(rows).run();
    const payload = (n) => { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = (i * 31) % 251; return b; };
    const small = payload(4096), large = payload(1 << 20);
    for (let i = 0; i < objects; i++) { await env.BUCKET.put("get-4k/" + i, small); await env.BUCKET.put("get-1m/" + i, large); }
    return json({ rows, objects });
  }
  if (p === "/d1/point") return json(await env.DB.prepare("SELECT * FROM kv WHERE k = ?").bind(+u.searchParams.get("k")).all());
  if (p === "/d1/insert") return json(await env.DB.prepare("INSERT INTO kv (v) VALUES (?)").bind(u.searchParams.get("v")).run());
  if (p.startsWith("/r2/")) {
    const key = decodeURIComponent(p.slice(4));
    if (req.method === "PUT") { const o = await env.BUCKET.put(key, await req.arrayBuffer()); return new Response(null, { headers: { etag: o.httpEtag } }); }
    const o = await env.BUCKET.get(key);
    if (!o) return json({ error: "NoSuchKey" }, 404);
    return new Response(o.body, { headers: { etag: o.httpEtag, "content-length": String(o.size) } });
  }
  return json({ error: "not found" }, 404);
} };`;

const state = mkdtempSync(join(tmpdir(), "miniflare-bench-"));
const mf = new Miniflare({
  modules: true, script: worker, compatibilityDate: "2025-09-01",
  host: "127.0.0.1", port: +(process.argv[2] ?? 8787),
  d1Databases: { DB: "00000000-0000-4000-8000-0000000000b1" }, r2Buckets: ["BUCKET"],
  d1Persist: join(state, "d1"), r2Persist: join(state, "r2"),
});
const url = await mf.ready;
console.log(`miniflare ${require("miniflare/package.json").version} ready at ${url} (state in ${state})`);
const stop = async () => { await mf.dispose(); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
