// getPlatformProxy() with the `offline` environment of a wrangler config whose unsafe bindings
// name tristore-miniflare-plugin: each of the three bindings makes real calls into the
// running tristore (whose Metacogna defaults provision the resources).
//
//   TRISTORE_URL=http://127.0.0.1:PORT node platform-proxy.mjs
//
// Run from a directory whose node_modules holds wrangler and the plugin. Leaves one row,
// one vector and one object behind (ids starting "plugin-") for the caller to find in the
// store; prints "OK" last when every check passed.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getPlatformProxy } from "wrangler";

const base = process.env.TRISTORE_URL;
assert.ok(base, "set TRISTORE_URL to tristore's REST address, http://127.0.0.1:PORT");
// the bindings below name it in their options (the variable would override them)
delete process.env.TRISTORE_URL;

const plugin = { package: "tristore-miniflare-plugin", name: "tristore" };
const dir = mkdtempSync(join(tmpdir(), "tristore-plugin-"));
const configPath = join(dir, "wrangler.jsonc");
writeFileSync(
  configPath,
  JSON.stringify(
    {
      name: "plugin-test",
      compatibility_date: "2025-09-01",
      // production bindings: untouched, and not used by `--env offline`
      d1_databases: [{ binding: "DB", database_name: "metacogna", database_id: "00000000-0000-4000-8000-000000000000" }],
      vectorize: [{ binding: "VECTOR_INDEX", index_name: "metacogna-index" }],
      r2_buckets: [{ binding: "metacogna_vault", bucket_name: "metacogna-vault" }],
      env: {
        offline: {
          unsafe: {
            bindings: [
              { name: "DB", type: "d1", database_name: "metacogna", dev: { plugin, options: { url: base } } },
              { name: "VECTOR_INDEX", type: "vectorize", index_name: "metacogna-index", dev: { plugin, options: { url: base } } },
              { name: "metacogna_vault", type: "r2", bucket_name: "metacogna-vault", dev: { plugin, options: { url: base } } },
            ],
          },
        },
      },
    },
    null,
    2,
  ),
);

const { env, dispose } = await getPlatformProxy({ configPath, environment: "offline", persist: false });
const rest = async (path, init) => {
  const res = await fetch(`${base}/client/v4/accounts/any${path}`, init);
  const body = await res.json();
  assert.ok(body.success, `${path}: ${JSON.stringify(body)}`);
  return body.result;
};

try {
  // ---- D1: the Metacogna schema tristore migrated, an insert, its integer kept
  const documents = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?").bind("documents").first();
  assert.deepEqual(documents, { name: "documents" });
  const run = await env.DB.prepare("INSERT INTO documents (id, title, content, metadata, r2Key, createdAt) VALUES (?, ?, ?, ?, ?, ?)")
    .bind("plugin-doc", "Plugin", "written through the plugin", "{}", "plugin/hello.txt", 42)
    .run();
  assert.equal(run.success, true);
  assert.equal(run.meta.changes, 1);
  const row = await env.DB.prepare("SELECT title, typeof(createdAt) AS t FROM documents WHERE id = ?").bind("plugin-doc").first();
  assert.deepEqual(row, { title: "Plugin", t: "integer" });
  await assert.rejects(env.DB.prepare("SELECT * FROM nope").all(), /D1_ERROR: no such table: nope/);
  // the same row over tristore's REST API
  const [db] = (await rest("/d1/database")).filter((d) => d.name === "metacogna");
  const [viaRest] = await rest(`/d1/database/${db.uuid}/query`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sql: "SELECT id, r2Key FROM documents" }),
  });
  assert.deepEqual(viaRest.results, [{ id: "plugin-doc", r2Key: "plugin/hello.txt" }]);

  // ---- Vectorize: describe, upsert, a filtered query, getByIds, the binding's own errors
  const info = await env.VECTOR_INDEX.describe();
  assert.equal(info.dimensions, 768);
  const values = Array.from({ length: 768 }, (_, i) => (i === 7 ? 1 : 0));
  const upserted = await env.VECTOR_INDEX.upsert([{ id: "plugin-vec", values, metadata: { docId: "plugin-doc", chunkIndex: 0 } }]);
  assert.match(upserted.mutationId, /^[0-9a-f-]{36}$/);
  const hits = await env.VECTOR_INDEX.query(values, { topK: 3, filter: { docId: "plugin-doc" }, returnMetadata: "all" });
  assert.equal(hits.count, 1);
  assert.equal(hits.matches[0].id, "plugin-vec");
  assert.ok(Math.abs(hits.matches[0].score - 1) < 1e-6, `score ${hits.matches[0].score}`);
  assert.deepEqual(hits.matches[0].metadata, { docId: "plugin-doc", chunkIndex: 0 });
  const none = await env.VECTOR_INDEX.query(values, { topK: 3, filter: { docId: "someone-else" } });
  assert.equal(none.count, 0);
  const [got] = await env.VECTOR_INDEX.getByIds(["plugin-vec"]);
  assert.equal(got.values.length, 768);
  await assert.rejects(env.VECTOR_INDEX.query([1, 0, 0], { topK: 1 }), /^Error: VECTOR_QUERY_ERROR \(code = 40006\)/);
  const viaRestVectors = await rest("/vectorize/v2/indexes/metacogna-index/get_by_ids", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ids: ["plugin-vec"] }),
  });
  assert.deepEqual(viaRestVectors.map((v) => v.id), ["plugin-vec"]);

  // ---- R2: put with metadata, get, head, list, a range read, delete
  const put = await env.metacogna_vault.put("plugin/hello.txt", "hello from the plugin", {
    httpMetadata: { contentType: "text/plain" },
    customMetadata: { via: "tristore-miniflare-plugin" },
  });
  assert.equal(put.key, "plugin/hello.txt");
  assert.equal(put.size, 21);
  const object = await env.metacogna_vault.get("plugin/hello.txt");
  assert.equal(await object.text(), "hello from the plugin");
  assert.equal(object.httpMetadata.contentType, "text/plain");
  assert.deepEqual(object.customMetadata, { via: "tristore-miniflare-plugin" });
  assert.equal(object.etag, put.etag);
  const part = await env.metacogna_vault.get("plugin/hello.txt", { range: { offset: 6, length: 4 } });
  assert.equal(await part.text(), "from");
  assert.equal((await env.metacogna_vault.head("plugin/hello.txt")).size, 21);
  await env.metacogna_vault.put("plugin/gone.txt", "x");
  const listed = await env.metacogna_vault.list({ prefix: "plugin/" });
  assert.deepEqual(listed.objects.map((o) => o.key), ["plugin/gone.txt", "plugin/hello.txt"]);
  await env.metacogna_vault.delete("plugin/gone.txt");
  assert.equal(await env.metacogna_vault.get("plugin/gone.txt"), null);
  assert.equal(await env.metacogna_vault.head("plugin/missing.txt"), null);

  console.log("OK");
} finally {
  await dispose();
}
