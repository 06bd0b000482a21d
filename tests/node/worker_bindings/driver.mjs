// Runs worker.mjs under real Miniflare (workerd's own D1, Vectorize and R2 binding classes)
// with its bindings pointed at tristore's remote-bindings route, and checks what the Worker
// saw against Cloudflare's documented behaviour (shared/spec/cloudflare-surface.md sections
// 1, 3 and 5; the error texts of workerd's bindings).
//
// usage: node driver.mjs <mode> <remote-bindings URL> <api token> [dump.json]
//   mode mf4   Miniflare 4.20260730.0, one URL per binding (resource in the path)
//   mode mf5   Miniflare 5.20261117.0-beta (convertV4MiniflareOptions), ONE URL for every
//              binding; resources come from ?<BINDING>=<name> query parameters
//   mode diff  the D1 and R2 suites against Miniflare 4's own local D1/R2 (storage in a temp
//              dir) and against tristore; differences must be listed in ALLOWED below
// env WORKER_BINDINGS_MODULES: the node_modules directory holding miniflare and miniflare5.
// Prints a report; exit status 0 and a last line "OK" when every check passed.

import { createRequire } from "node:module";
import { pathToFileURL, fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const [mode, base, token, dumpPath] = process.argv.slice(2);
if (!["mf4", "mf5", "diff"].includes(mode) || !base || token === undefined) {
  console.error("usage: node driver.mjs mf4|mf5|diff <remote-bindings URL> <api token> [dump.json]");
  process.exit(2);
}
const modules = process.env.WORKER_BINDINGS_MODULES;
if (!modules) {
  console.error("WORKER_BINDINGS_MODULES is not set");
  process.exit(2);
}
const require = createRequire(path.join(modules, "noop.js"));
const load = async (name) => import(pathToFileURL(require.resolve(name)).href);
const here = path.dirname(fileURLToPath(import.meta.url));
const scriptPath = path.join(here, "worker.mjs");
const resetUrl = base.replace(/\/remote-bindings\/?$/, "/reset");
const pkgVersion = (name) => JSON.parse(readFileSync(path.join(modules, name, "package.json"), "utf8")).version;
const md5 = (b) => createHash("md5").update(b).digest("hex");
const BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// ---------------------------------------------------------------------------------------
// checks

const failures = [];
let passed = 0;
const show = (v) => {
  const s = JSON.stringify(v);
  return s === undefined ? "undefined" : s.length > 600 ? `${s.slice(0, 600)}…` : s;
};
const canon = (v) =>
  v && typeof v === "object"
    ? Array.isArray(v)
      ? v.map(canon)
      : Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]))
    : v;
const same = (a, b) => JSON.stringify(canon(a)) === JSON.stringify(canon(b));
const U = { $undefined: true };
const isU = (v) => v === undefined || same(v, U);

class Check {
  constructor(where) {
    this.where = where;
  }
  fail(what, detail) {
    failures.push(`${this.where}: ${what}${detail ? `\n      ${detail}` : ""}`);
  }
  pass() {
    passed++;
  }
  eq(label, actual, expected) {
    if (same(actual, expected)) this.pass();
    else this.fail(label, `expected ${show(expected)}\n      got      ${show(actual)}`);
  }
  that(label, cond, actual) {
    if (cond) this.pass();
    else this.fail(label, `got ${show(actual)}`);
  }
}

let R = {}; // suite -> step -> {ok} | {err}

function step(suite, name) {
  const c = new Check(`${suite}.${name}`);
  const r = R[suite]?.[name];
  if (R[suite]?.$suiteError) {
    c.fail("the suite threw", show(R[suite]));
    return { c, r: undefined };
  }
  if (!r) c.fail("step missing from the Worker's answer");
  return { c, r };
}

// The step returned a value: run fn(check, value).
function ok(suite, name, fn) {
  const { c, r } = step(suite, name);
  if (!r) return;
  if (r.err) return c.fail("expected a value, the binding threw", `${r.err.name}: ${r.err.message}`);
  try {
    fn(c, r.ok);
  } catch (e) {
    c.fail("check crashed", `${e.stack}\n      value ${show(r.ok)}`);
  }
}

// The step threw. m: {exact} | {prefix, suffix, includes: [..], name}
function err(suite, name, m) {
  const { c, r } = step(suite, name);
  if (!r) return;
  if (!r.err) return c.fail("expected the binding to throw", `it returned ${show(r.ok)}`);
  const msg = r.err.message;
  const want = [];
  let good = true;
  if (m.exact !== undefined) {
    want.push(`exactly ${show(m.exact)}`);
    good &&= msg === m.exact;
  }
  if (m.prefix !== undefined) {
    want.push(`starting ${show(m.prefix)}`);
    good &&= msg.startsWith(m.prefix);
  }
  if (m.suffix !== undefined) {
    want.push(`ending ${show(m.suffix)}`);
    good &&= msg.endsWith(m.suffix);
  }
  for (const s of m.includes ?? []) {
    want.push(`containing ${show(s)}`);
    good &&= msg.includes(s);
  }
  if (m.name !== undefined) {
    want.push(`a ${m.name}`);
    good &&= r.err.name === m.name;
  }
  if (good) c.pass();
  else c.fail(`wrong error`, `expected ${want.join(", ")}\n      got      ${r.err.name}: ${show(msg)}`);
}

// ---------------------------------------------------------------------------------------
// running the Worker

const v4Options = (bindings) => ({ modules: true, scriptPath, compatibilityDate: "2025-09-01", ...bindings });

async function runWorker(Miniflare, options, suites) {
  const mf = new Miniflare(options);
  const out = {};
  try {
    await mf.ready;
    for (const suite of suites) {
      const [name, qs = ""] = suite.split("?");
      const t = Date.now();
      const res = await mf.dispatchFetch(`http://localhost/${name}${qs ? `?${qs}` : ""}`);
      const text = await res.text();
      try {
        out[name] = JSON.parse(text);
      } catch {
        out[name] = { $suiteError: { status: res.status, body: text.slice(0, 2000) } };
      }
      if (res.status !== 200 && !out[name].$suiteError) out[name] = { $suiteError: out[name] };
      console.log(`  ${name}: ${Object.keys(out[name]).length} steps, ${Date.now() - t} ms`);
    }
  } finally {
    await mf.dispose();
  }
  return out;
}

// With --api-token, the reset route refuses a caller without the token.
async function resetNeedsToken() {
  const res = await fetch(resetUrl, { method: "POST" });
  await res.text();
  new Check("POST /cdn-cgi/tristore/reset without the token").that("refused with 401 or 403", res.status === 401 || res.status === 403, res.status);
}

async function reset() {
  const url = new URL(resetUrl);
  if (token) url.searchParams.set("token", token);
  const res = await fetch(url, { method: "POST", headers: token ? { authorization: `Bearer ${token}` } : {} });
  const body = await res.text();
  const c = new Check("POST /cdn-cgi/tristore/reset");
  c.that(`answers 2xx (body ${body.slice(0, 200)})`, res.ok, res.status);
}

const withToken = (u, t = token) => {
  const url = new URL(u);
  if (t) url.searchParams.set("token", t);
  return url;
};

// ---------------------------------------------------------------------------------------
// expectations: Vectorize (cloudflare-surface.md section 3)

const ids = (m) => m.matches.map((x) => x.id);
const close = (a, b, eps = 1e-5) => typeof a === "number" && Math.abs(a - b) <= eps;
const f32 = (xs) => xs.map((x) => Math.fround(x));

function checkVectorize() {
  const S = "vectorize";
  let mutation;
  ok(S, "describe_empty", (c, v) => {
    c.eq("dimensions", v.dimensions, 3);
    c.eq("vectorCount", v.vectorCount, 0);
  });
  ok(S, "insert", (c, v) => {
    c.eq("keys", Object.keys(v), ["mutationId"]);
    c.that("mutationId is a UUID", UUID.test(v.mutationId), v.mutationId);
    mutation = v.mutationId;
  });
  ok(S, "describe_after_insert", (c, v) => {
    c.eq("keys", Object.keys(v).sort(), ["dimensions", "processedUpToDatetime", "processedUpToMutation", "vectorCount"]);
    c.eq("vectorCount", v.vectorCount, 4);
    c.eq("dimensions", v.dimensions, 3);
    c.eq("processedUpToMutation is the last mutation", v.processedUpToMutation, mutation);
    c.that("processedUpToDatetime is an ISO 8601 string", typeof v.processedUpToDatetime === "string" && !Number.isNaN(Date.parse(v.processedUpToDatetime)) && v.processedUpToDatetime.includes("T"), v.processedUpToDatetime);
  });
  const noValuesNoMetadata = (c, m) => {
    for (const x of m.matches) {
      c.that(`match ${x.id} carries no values`, !("values" in x), x);
      c.that(`match ${x.id} carries no metadata`, !("metadata" in x), x);
    }
  };
  ok(S, "query_default", (c, v) => {
    c.eq("count", v.count, 3);
    c.eq("matches.length", v.matches.length, 3);
    c.eq("first two ids", ids(v).slice(0, 2), ["a", "c"]);
    c.that("third is b or d (both score 0)", ["b", "d"].includes(v.matches[2]?.id), v.matches[2]);
    c.that("cosine similarity of identical vectors is 1", close(v.matches[0]?.score, 1), v.matches[0]);
    c.that("score of c is cos = 0.9/sqrt(0.82)", close(v.matches[1]?.score, 0.9 / Math.sqrt(0.82), 1e-4), v.matches[1]);
    c.that("third score is 0", close(v.matches[2]?.score, 0), v.matches[2]);
    noValuesNoMetadata(c, v);
  });
  ok(S, "query_no_options", (c, v) => {
    c.eq("topK defaults to 5 (4 vectors stored)", v.count, 4);
    noValuesNoMetadata(c, v);
  });
  ok(S, "query_float32_values", (c, v) => {
    c.eq("ids", ids(v), ["a", "c"]);
    c.eq("values of a", v.matches[0]?.values, [1, 0, 0]);
    c.eq("values of c, as float32 widened", v.matches[1]?.values, f32([0.9, 0.1, 0]));
  });
  ok(S, "query_float64", (c, v) => c.eq("ids", ids(v), ["b"]));
  ok(S, "query_meta_all", (c, v) => c.eq("metadata", v.matches[0]?.metadata, { g: "x", n: 1, tag: "alpha" }));
  ok(S, "query_meta_indexed", (c, v) => c.eq("only indexed properties", v.matches[0]?.metadata, { g: "x", n: 1 }));
  ok(S, "query_meta_none", (c, v) => {
    c.eq("ids", ids(v), ["a"]);
    noValuesNoMetadata(c, v);
  });
  ok(S, "query_meta_true", (c, v) => c.eq("true means all", v.matches[0]?.metadata, { g: "x", n: 1, tag: "alpha" }));
  ok(S, "query_filter_eq", (c, v) => c.eq("ids", ids(v), ["a", "c"]));
  ok(S, "query_filter_explicit_eq", (c, v) => c.eq("ids", ids(v), ["b"]));
  ok(S, "query_filter_in", (c, v) => c.eq("ids", ids(v).sort(), ["b", "d"]));
  ok(S, "query_filter_ne", (c, v) => c.eq("ids", ids(v).sort(), ["b", "d"]));
  ok(S, "query_filter_nin", (c, v) => c.eq("ids", ids(v), ["d"]));
  ok(S, "query_filter_range", (c, v) => c.eq("ids", ids(v).sort(), ["b", "c"]));
  ok(S, "query_filter_two_keys", (c, v) => c.eq("ids", ids(v), ["c"]));
  ok(S, "query_filter_unindexed", (c, v) => c.eq("a property without a metadata index matches nothing", v.count, 0));
  ok(S, "query_namespace", (c, v) => {
    c.eq("ids", ids(v), ["c"]);
    c.eq("metadata", v.matches[0]?.metadata, { g: "x", n: 3 });
    if (v.matches[0] && "namespace" in v.matches[0]) c.eq("namespace", v.matches[0].namespace, "ns1");
  });
  ok(S, "query_namespace_and_filter", (c, v) => c.eq("count", v.count, 0));
  ok(S, "query_namespace_unknown", (c, v) => c.eq("count", v.count, 0));
  ok(S, "queryById", (c, v) => {
    c.eq("ids", ids(v), ["a", "c"]);
    c.that("score 1", close(v.matches[0]?.score, 1), v.matches[0]);
    c.eq("values", v.matches[0]?.values, [1, 0, 0]);
  });
  ok(S, "queryById_filter", (c, v) => c.eq("ids", ids(v), ["b"]));
  ok(S, "insert_existing", (c, v) => c.that("mutationId", UUID.test(v.mutationId), v));
  ok(S, "getByIds_after_insert_existing", (c, v) => {
    c.eq("first write wins", v.map((x) => [x.id, x.values, x.metadata]), [["a", [1, 0, 0], { g: "x", n: 1, tag: "alpha" }]]);
  });
  ok(S, "upsert", (c, v) => c.that("mutationId", UUID.test(v.mutationId), v));
  ok(S, "describe_after_upsert", (c, v) => c.eq("vectorCount", v.vectorCount, 5));
  ok(S, "getByIds_after_upsert", (c, v) => {
    c.eq("ids", v.map((x) => x.id), ["a", "e"]);
    c.eq("a replaced: values", v[0]?.values, [0, 0, 1]);
    c.eq("a replaced whole: metadata", v[0]?.metadata, { g: "w" });
    c.that("a has no namespace", !v[0]?.namespace, v[0]);
    c.eq("e values", v[1]?.values, [1, 1, 0]);
    c.eq("e namespace", v[1]?.namespace, "ns2");
    c.that("e has no metadata", v[1] && (!("metadata" in v[1]) || same(v[1].metadata, {})), v[1]);
  });
  ok(S, "query_after_upsert", (c, v) => {
    c.eq("ids", ids(v), ["a"]);
    c.eq("metadata", v.matches[0]?.metadata, { g: "w" });
  });
  ok(S, "getByIds_unknown_omitted", (c, v) => c.eq("ids", v.map((x) => x.id), ["b", "c"]));
  ok(S, "getByIds_all_unknown", (c, v) => c.eq("empty", v, []));
  ok(S, "upsert_float32_precision", (c, v) => c.that("mutationId", UUID.test(v.mutationId), v));
  ok(S, "getByIds_float32_precision", (c, v) => c.eq("float32 widened (58.8 -> 58.79999923706055)", v[0]?.values, f32([0.1, 0.2, 58.8])));
  ok(S, "deleteByIds", (c, v) => c.that("mutationId", UUID.test(v.mutationId), v));
  ok(S, "describe_after_delete", (c, v) => c.eq("vectorCount", v.vectorCount, 5));
  ok(S, "getByIds_after_delete", (c, v) => c.eq("gone", v, []));
  ok(S, "query_after_delete", (c, v) => {
    c.eq("count", v.count, 5);
    c.that("b is gone", !ids(v).includes("b"), ids(v));
  });
  ok(S, "topK_50_values_ok", (c, v) => c.eq("count", v, 5));
  ok(S, "topK_100_indexed_ok", (c, v) => c.eq("'indexed' does not lower the cap", v, 5));
  const cap = "VECTOR_QUERY_ERROR (code = 40025): with returnValues=true or returnMetadata=all, max top K is 50, but got 51";
  err(S, "topK_51_values", { prefix: cap });
  err(S, "topK_51_meta_all", { prefix: cap });
  err(S, "topK_101", { prefix: "VECTOR_QUERY_ERROR (code = 40025): ", includes: ["101"] });
  ok(S, "insert_1000_ok", (c, v) => c.that("mutationId", UUID.test(v.mutationId), v));
  ok(S, "describe_after_1000", (c, v) => c.eq("vectorCount", v.vectorCount, 1005));
  err(S, "insert_1001", { prefix: "VECTOR_INSERT_ERROR (code = " });
  err(S, "upsert_1001", { prefix: "VECTOR_UPSERT_ERROR (code = " });
  ok(S, "getByIds_after_1001", (c, v) => c.eq("nothing stored", v, []));
  ok(S, "deleteByIds_1000", (c, v) => c.that("mutationId", UUID.test(v.mutationId), v));
  ok(S, "describe_after_delete_1000", (c, v) => c.eq("vectorCount", v.vectorCount, 5));
  err(S, "query_wrong_dims", { exact: "VECTOR_QUERY_ERROR (code = 40006): invalid query vector, expected 3 dimensions, and got 2 dimensions" });
  err(S, "query_wrong_dims_4", { exact: "VECTOR_QUERY_ERROR (code = 40006): invalid query vector, expected 3 dimensions, and got 4 dimensions" });
  err(S, "insert_wrong_dims", { exact: 'VECTOR_INSERT_ERROR (code = 40012): invalid vector for id="bad", expected 3 dimensions, and got 2 dimensions' });
  err(S, "upsert_wrong_dims", { exact: 'VECTOR_UPSERT_ERROR (code = 40012): invalid vector for id="bad", expected 3 dimensions, and got 4 dimensions' });
  ok(S, "getByIds_bad_not_stored", (c, v) => c.eq("nothing stored", v, []));
  err(S, "queryById_unknown", { prefix: "VECTOR_QUERY_ERROR (code = " });
  err(S, "filter_unknown_operator", { prefix: "VECTOR_QUERY_ERROR (code = " });
  err(S, "filter_dollar_key", { prefix: "VECTOR_QUERY_ERROR (code = " });
  err(S, "returnMetadata_false", { prefix: "VECTOR_QUERY_ERROR (code = 40026): " });
  err(S, "returnMetadata_invalid_string", { exact: 'Invalid returnMetadata option. Expected: true, false, "none", "indexed" or "all"; got: some' });
  ok(S, "upsert_long_string", (c, v) => c.that("mutationId", UUID.test(v.mutationId), v));
  ok(S, "query_long_string_indexed", (c, v) => {
    c.eq("ids", ids(v), ["long"]);
    c.eq("indexed string cut to its first 64 bytes (32 two-byte characters)", v.matches[0]?.metadata, { g: "é".repeat(32), n: 7 });
  });
  ok(S, "query_long_string_all", (c, v) => c.eq("'all' returns it whole", v.matches[0]?.metadata, { g: "é".repeat(40), n: 7, tag: "t" }));
  ok(S, "deleteByIds_long", (c, v) => c.that("mutationId", UUID.test(v.mutationId), v));
  ok(S, "describe_final", (c, v) => c.eq("vectorCount", v.vectorCount, 5));
}

// ---------------------------------------------------------------------------------------
// expectations: D1 (cloudflare-surface.md section 1)

const META_KEYS = ["changed_db", "changes", "duration", "last_row_id", "rows_read", "rows_written", "size_after"];
function checkMeta(c, m, want) {
  for (const k of META_KEYS) c.that(`meta.${k} present`, k in (m ?? {}), m);
  c.that("meta.duration is a number >= 0", typeof m?.duration === "number" && m.duration >= 0, m?.duration);
  c.that("meta.size_after is a positive integer", Number.isInteger(m?.size_after) && m.size_after > 0, m?.size_after);
  c.that("meta.rows_read is an integer", Number.isInteger(m?.rows_read), m?.rows_read);
  c.that("meta.rows_written is an integer", Number.isInteger(m?.rows_written), m?.rows_written);
  for (const [k, v] of Object.entries(want)) {
    if (typeof v === "function") c.that(`meta.${k}`, v(m?.[k]), m?.[k]);
    else c.eq(`meta.${k}`, m?.[k], v);
  }
}

function checkD1() {
  const S = "d1";
  ok(S, "exec_create", (c, v) => {
    c.eq("keys", Object.keys(v).sort(), ["count", "duration"]);
    c.eq("count (one per line)", v.count, 3);
    c.that("duration is a number", typeof v.duration === "number", v.duration);
  });
  ok(S, "run_insert", (c, v) => {
    c.eq("success", v.success, true);
    c.eq("results", v.results, []);
    checkMeta(c, v.meta, { changes: 1, last_row_id: 1, changed_db: true, rows_written: (n) => n >= 1 });
  });
  ok(S, "run_insert_returning", (c, v) => {
    c.eq("run() returns RETURNING rows as objects", v.results, [{ id: 2, name: "Bob" }]);
    checkMeta(c, v.meta, { changes: 1, last_row_id: 2 });
  });
  ok(S, "first", (c, v) => c.eq("row", v, { id: 1, email: "a@x", name: "Ann", age: 30 }));
  ok(S, "first_col", (c, v) => c.eq("value", v, "Bob"));
  err(S, "first_col_missing", { exact: "D1_COLUMN_NOTFOUND: Column not found (nope)" });
  ok(S, "first_no_rows", (c, v) => c.eq("null", v, null));
  ok(S, "first_col_no_rows", (c, v) => c.eq("null", v, null));
  ok(S, "all", (c, v) => {
    c.eq("success", v.success, true);
    c.eq("results", v.results, [
      { id: 1, email: "a@x", name: "Ann", age: 30 },
      { id: 2, email: "b@x", name: "Bob", age: 41 },
    ]);
    checkMeta(c, v.meta, { changes: 0, changed_db: false, rows_written: 0 });
  });
  ok(S, "all_no_rows", (c, v) => c.eq("results", v.results, []));
  ok(S, "run_select", (c, v) => c.eq("run() returns rows", v.results, [{ id: 1, name: "Ann" }, { id: 2, name: "Bob" }]));
  ok(S, "raw", (c, v) => c.eq("rows", v, [[1, "a@x", "Ann", 30], [2, "b@x", "Bob", 41]]));
  ok(S, "raw_columnNames", (c, v) => c.eq("rows with header", v, [["id", "name"], [1, "Ann"], [2, "Bob"]]));
  ok(S, "raw_columnNames_no_rows", (c, v) => c.eq("header even without rows", v, [["id", "name"]]));
  ok(S, "raw_duplicate_columns", (c, v) => c.eq("raw keeps duplicates", v, [[1, 2]]));
  ok(S, "all_duplicate_columns", (c, v) => {
    c.eq("last value wins", v.results, [{ x: 3, y: 2 }]);
    c.eq("first position kept", Object.keys(v.results[0] ?? {}), ["x", "y"]);
  });
  ok(S, "update_meta", (c, v) => checkMeta(c, v.meta, { changes: 2, changed_db: true, last_row_id: 2, rows_written: (n) => n >= 2 }));
  ok(S, "select_meta", (c, v) => {
    c.eq("results", v.results, [{ n: 2 }]);
    checkMeta(c, v.meta, { changes: 0, changed_db: false, rows_written: 0, rows_read: (n) => n >= 1 });
  });
  ok(S, "create_keeps_last_row_id", (c, v) => checkMeta(c, v.meta, { last_row_id: 2, changes: 0 }));
  ok(S, "batch", (c, v) => {
    c.eq("three results", v.length, 3);
    c.eq("all succeed", v.map((r) => r.success), [true, true, true]);
    c.eq("last_row_id per member", v.map((r) => r.meta?.last_row_id), [3, 4, 4]);
    c.eq("changes per member", v.map((r) => r.meta?.changes), [1, 1, 0]);
    c.eq("select sees the inserts", v[2]?.results, [{ n: 4 }]);
    c.eq("write members give results []", [v[0]?.results, v[1]?.results], [[], []]);
  });
  err(S, "batch_atomic_failure", { exact: "D1_ERROR: UNIQUE constraint failed: wb_people.email: SQLITE_CONSTRAINT" });
  ok(S, "batch_rolled_back", (c, v) => c.eq("the failing batch left nothing", v, [["a@x"], ["b@x"], ["c@x"], ["d@x"]]));
  err(S, "batch_empty", { prefix: "D1_ERROR: " });
  ok(S, "bind_values", (c, v) => c.eq("11 inserts", v, 11));
  ok(S, "bind_stored", (c, v) =>
    c.eq("values and storage classes (integral numbers are INTEGER in production)", v, [
      { v: 42, t: "integer" },
      { v: 1.5, t: "real" },
      { v: -7, t: "integer" },
      { v: "str", t: "text" },
      { v: null, t: "null" },
      { v: 1, t: "integer" },
      { v: 0, t: "integer" },
      { v: [1, 2, 255], t: "blob" },
      { v: [0, 1, 2], t: "blob" },
      { v: [9, 8], t: "blob" },
      { v: 2 ** 40, t: "integer" },
    ]),
  );
  ok(S, "typeof_param_integer", (c, v) => c.eq("bind(42) is INTEGER", v, { t: "integer", v: 42 }));
  ok(S, "typeof_param_real", (c, v) => c.eq("bind(2.5) is REAL", v, { t: "real", v: 2.5 }));
  ok(S, "typeof_param_bool", (c, v) => c.eq("bind(true) is INTEGER 1", v, { t: "integer", v: 1 }));
  ok(S, "typeof_param_blob", (c, v) => c.eq("ArrayBuffer is a BLOB, returned as bytes", v, { t: "blob", v: [0, 255], n: 2 }));
  ok(S, "blob_literal", (c, v) => c.eq("BLOBs come back as arrays of numbers", v, [0, 255, 16]));
  err(S, "bind_undefined", { exact: "D1_TYPE_ERROR: Type 'undefined' not supported for value 'undefined'" });
  err(S, "bind_object", { exact: "D1_TYPE_ERROR: Type 'object' not supported for value '[object Object]'" });
  err(S, "bind_bigint", { exact: "D1_TYPE_ERROR: Type 'bigint' not supported for value '1'" });
  ok(S, "unicode_round_trip", (c, v) => c.eq("UTF-8 text round-trips", v, { s: "héllo ✓ 😀", n: 9 }));
  ok(S, "many_rows", (c, v) => c.eq("5,000 rows", v, { n: 5000, first: { x: 1, s: "row 1" }, last: { x: 5000, s: "row 5000" }, rows_written: 0 }));
  ok(S, "bind_replaces", (c, v) => c.eq("second bind replaces", v, 2));
  const noTable = "D1_ERROR: no such table: nope: SQLITE_ERROR";
  err(S, "error_no_table", { exact: noTable });
  err(S, "error_no_table_first", { exact: noTable });
  err(S, "error_no_table_run", { exact: noTable });
  err(S, "error_no_table_raw", { exact: noTable });
  err(S, "error_syntax", { prefix: 'D1_ERROR: near "SELEC": syntax error', suffix: ": SQLITE_ERROR" });
  err(S, "error_unique", { exact: "D1_ERROR: UNIQUE constraint failed: wb_people.email: SQLITE_CONSTRAINT" });
  err(S, "error_not_null", { exact: "D1_ERROR: NOT NULL constraint failed: wb_people.email: SQLITE_CONSTRAINT" });
  err(S, "error_fk", { exact: "D1_ERROR: FOREIGN KEY constraint failed: SQLITE_CONSTRAINT" });
  ok(S, "fk_ok", (c, v) => checkMeta(c, v.meta, { changes: 1 }));
  err(S, "error_fk_delete_parent", { exact: "D1_ERROR: FOREIGN KEY constraint failed: SQLITE_CONSTRAINT" });
  err(S, "error_wrong_param_count", { prefix: "D1_ERROR: " });
  err(S, "exec_error_line1", { exact: "D1_EXEC_ERROR: Error in line 1: INSERT INTO nope VALUES (1): no such table: nope: SQLITE_ERROR" });
  err(S, "exec_error_line2", { prefix: "D1_EXEC_ERROR: Error in line ", suffix: ": no such table: nope: SQLITE_ERROR" });
  ok(S, "exec_error_line2_rolled_back", (c, v) => c.eq("the failed exec left nothing (all-or-nothing: Miniflare, and tristore's documented choice; production unknown, spec 8.1)", v, 0));
  ok(S, "exec_ok", (c, v) => {
    c.eq("count: the blank line is skipped (Miniflare, and tristore's documented choice)", v.count, 2);
    c.that("duration", typeof v.duration === "number" && v.duration >= 0, v);
  });
  ok(S, "exec_ok_stored", (c, v) => c.eq("both lines ran", v, 2));
  ok(S, "session_bookmark_initial", (c, v) => c.eq("no bookmark before the first query", v, null));
  let b1, b2, b3;
  ok(S, "session_read", (c, v) => {
    c.eq("n", v.n, 2 + 2);
    c.that("bookmark after a query has D1's shape", BOOKMARK.test(v.bookmark), v.bookmark);
    b1 = v.bookmark;
  });
  ok(S, "session_write", (c, v) => {
    c.eq("changes", v.changes, 1);
    c.that("bookmark shape", BOOKMARK.test(v.bookmark), v.bookmark);
    c.that("a write moves the bookmark forward", typeof b1 === "string" && v.bookmark > b1, { before: b1, after: v.bookmark });
    b2 = v.bookmark;
  });
  ok(S, "session_batch", (c, v) => {
    c.that("bookmark shape", BOOKMARK.test(v.bookmark), v.bookmark);
    c.that("a batch with a write moves it forward", typeof b2 === "string" && v.bookmark > b2, { before: b2, after: v.bookmark });
    b3 = v.bookmark;
  });
  ok(S, "session_read_again", (c, v) => {
    c.that("bookmark shape", BOOKMARK.test(v), v);
    c.that("never backwards", typeof v === "string" && typeof b3 === "string" && v >= b3, { before: b3, after: v });
  });
  ok(S, "session_from_bookmark", (c, v) => {
    c.eq("a session from a bookmark reports it", v.before, b2);
    c.eq("and reads the write it covers", v.n, 1);
    c.that("never backwards", typeof v.after === "string" && v.after >= b2, v);
  });
  ok(S, "session_unconstrained", (c, v) => {
    c.eq("before", v.before, null);
    c.that("after", BOOKMARK.test(v.after), v);
  });
  ok(S, "session_first_unconstrained_string", (c, v) => {
    c.eq("before", v.before, null);
    c.that("after", BOOKMARK.test(v.after), v);
  });
  ok(S, "session_no_exec", (c, v) => c.eq("sessions have no exec()", v, "undefined"));
  let size0;
  ok(S, "size_before", (c, v) => {
    c.eq("results", v.results, [{ 1: 1 }]);
    checkMeta(c, v.meta, { changes: 0, changed_db: false, rows_written: 0 });
    size0 = v.meta.size_after;
  });
  // >=: free pages left by earlier runs (e.g. before a reset) may absorb the 100 kB.
  ok(S, "size_grows", (c, v) => checkMeta(c, v.meta, { changes: 1, changed_db: true, size_after: (n) => n >= size0 }));
}

// ---------------------------------------------------------------------------------------
// expectations: R2 (cloudflare-surface.md section 5)

const date = (v) => v?.$date;
const recent = (v) => {
  const t = Date.parse(date(v));
  return Math.abs(t - Date.now()) < 15 * 60 * 1000;
};

function checkObject(c, o, want) {
  for (const [k, v] of Object.entries(want)) {
    if (typeof v === "function") c.that(k, v(o?.[k]), o?.[k]);
    else c.eq(k, o?.[k], v);
  }
}

function checkR2() {
  const S = "r2";
  const hello = md5("hello");
  const sentMeta = {
    contentType: "text/plain",
    contentLanguage: "en",
    contentDisposition: "inline",
    cacheControl: "max-age=60",
    cacheExpiry: { $date: "2030-01-02T03:04:05.000Z" },
  };
  let put;
  ok(S, "put_string", (c, o) => {
    put = o;
    checkObject(c, o, {
      key: "docs/a.txt",
      size: 5,
      etag: hello,
      httpEtag: `"${hello}"`,
      version: (v) => typeof v === "string" && v.length > 0,
      uploaded: recent,
      httpMetadata: sentMeta,
      customMetadata: { owner: "me", "x-y": "z" },
      checksums: { md5: hello },
      storageClass: "Standard",
      hasBody: false,
    });
  });
  ok(S, "head", (c, o) => {
    checkObject(c, o, {
      key: "docs/a.txt",
      size: 5,
      etag: hello,
      httpEtag: `"${hello}"`,
      version: put?.version,
      uploaded: put?.uploaded,
      httpMetadata: sentMeta,
      customMetadata: { owner: "me", "x-y": "z" },
      checksums: { md5: hello },
      storageClass: "Standard",
      hasBody: false,
    });
  });
  ok(S, "head_writeHttpMetadata", (c, v) =>
    c.eq("headers", v, {
      "content-type": "text/plain",
      "content-language": "en",
      "content-disposition": "inline",
      "cache-control": "max-age=60",
      expires: "Wed, 02 Jan 2030 03:04:05 GMT",
    }),
  );
  ok(S, "get", (c, o) => checkObject(c, o, { text: "hello", hasBody: true, etag: hello, size: 5, httpMetadata: sentMeta, customMetadata: { owner: "me", "x-y": "z" }, version: put?.version }));
  ok(S, "get_json_bytes", (c, v) => c.eq("bytes", v, { bytes: [104, 101, 108, 108, 111], bodyUsed: true }));
  ok(S, "put_arraybuffer", (c, o) => checkObject(c, o, { size: 10, etag: md5(Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])) }));
  ok(S, "put_view", (c, o) => checkObject(c, o, { size: 2, etag: md5(Buffer.from([6, 7])) }));
  ok(S, "get_view", (c, o) => checkObject(c, o, { bytes: [6, 7] }));
  ok(S, "put_null", (c, o) => checkObject(c, o, { size: 0, etag: "d41d8cd98f00b204e9800998ecf8427e" }));
  ok(S, "get_empty", (c, o) => checkObject(c, o, { bytes: [], size: 0, hasBody: true }));
  ok(S, "put_stream", (c, o) => checkObject(c, o, { size: 11, etag: md5("hello world") }));
  ok(S, "get_stream", (c, o) => checkObject(c, o, { text: "hello world", httpMetadata: { contentType: "text/x-stream" } }));
  ok(S, "put_request_body", (c, o) => checkObject(c, o, { size: 12 }));
  ok(S, "get_request_body", (c, o) => checkObject(c, o, { text: "request body" }));
  err(S, "put_stream_unknown_length", { name: "TypeError", includes: ["known length"] });
  ok(S, "put_httpMetadata_headers", (c, o) =>
    checkObject(c, o, { key: "hdrs.txt", size: 1, etag: md5("h"), httpMetadata: { contentType: "text/html", cacheControl: "no-store", cacheExpiry: { $date: "2037-10-21T07:28:00.000Z" } } }),
  );
  ok(S, "head_httpMetadata_headers", (c, o) =>
    checkObject(c, o, { httpMetadata: { contentType: "text/html", cacheControl: "no-store", cacheExpiry: { $date: "2037-10-21T07:28:00.000Z" } } }),
  );
  ok(S, "put_unicode_key", (c, o) => checkObject(c, o, { key: "ключ/ü.txt", size: 7 }));
  ok(S, "head_unicode_key", (c, o) =>
    checkObject(c, o, { key: "ключ/ü.txt", size: 7, customMetadata: { "ключ": "значение ✓" }, httpMetadata: { contentType: "text/plain; charset=utf-8" } }),
  );
  ok(S, "get_unicode_key", (c, o) => checkObject(c, o, { key: "ключ/ü.txt", text: "unicode" }));

  const range = (name, bytes, r) => ok(S, name, (c, o) => checkObject(c, o, { bytes, range: r, size: 10, hasBody: true }));
  range("get_range_offset_length", [2, 3, 4], { offset: 2, length: 3 });
  range("get_range_offset", [7, 8, 9], { offset: 7, length: 3 });
  range("get_range_length", [0, 1], { offset: 0, length: 2 });
  range("get_range_suffix", [6, 7, 8, 9], { offset: 6, length: 4 });
  range("get_range_clamped", [8, 9], { offset: 8, length: 2 });
  range("get_range_suffix_clamped", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], { offset: 0, length: 10 });
  range("get_range_headers", [1, 2, 3], { offset: 1, length: 3 });
  range("get_range_headers_suffix", [8, 9], { offset: 8, length: 2 });
  range("get_range_headers_open", [8, 9], { offset: 8, length: 2 });
  const badRange = { exact: "get: The requested range is not satisfiable (10039)" };
  err(S, "get_range_invalid_offset", badRange);
  err(S, "get_range_invalid_length", badRange);
  err(S, "get_range_invalid_headers", badRange);
  err(S, "get_range_negative", { name: "RangeError" });
  err(S, "get_range_suffix_and_offset", { exact: "Suffix is incompatible with offset." });

  ok(S, "put_md5_hex_ok", (c, o) => checkObject(c, o, { checksums: { md5: hello } }));
  ok(S, "put_md5_binary_ok", (c, o) => checkObject(c, o, { checksums: { md5: hello } }));
  const sha1 = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";
  const sha256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
  ok(S, "put_sha1_ok", (c, o) => checkObject(c, o, { checksums: { md5: hello, sha1 } }));
  ok(S, "head_sha1", (c, o) => checkObject(c, o, { checksums: { md5: hello, sha1 } }));
  ok(S, "put_sha256_ok", (c, o) => checkObject(c, o, { checksums: { md5: hello, sha256 } }));
  ok(S, "head_sha256", (c, o) => checkObject(c, o, { checksums: { md5: hello, sha256 } }));
  // The text is not in Cloudflare's docs: prefix and code here; the differential compares it
  // with the R2 text Miniflare reproduces.
  const badDigest = () => ({ prefix: "put: ", suffix: " (10037)" });
  err(S, "put_md5_wrong", badDigest("MD5"));
  ok(S, "head_md5_wrong", (c, v) => c.eq("nothing stored", v, null));
  err(S, "put_sha1_wrong", badDigest("SHA-1"));
  err(S, "put_sha256_wrong", badDigest("SHA-256"));
  ok(S, "head_sha256_wrong", (c, v) => c.eq("nothing stored", v, null));
  err(S, "put_md5_short", { name: "TypeError", exact: "MD5 is 32 hex characters, not 4" });

  ok(S, "cond_put_v1", (c, o) => checkObject(c, o, { etag: md5("v1") }));
  ok(S, "cond_put_etagMatches_ok", (c, o) => checkObject(c, o, { etag: md5("v2"), key: "cond" }));
  ok(S, "cond_put_etagMatches_fail", (c, v) => c.eq("failed precondition: null, nothing stored", v, null));
  ok(S, "cond_put_etagDoesNotMatch_star_exists", (c, v) => c.eq("put-if-absent on an existing key: null", v, null));
  ok(S, "cond_put_etagDoesNotMatch_star_new", (c, o) => checkObject(c, o, { key: "cond-new", etag: md5("n") }));
  ok(S, "cond_put_headers_fail", (c, v) => c.eq("If-Match header failing: null", v, null));
  ok(S, "cond_get_after_puts", (c, o) => checkObject(c, o, { text: "v2", etag: md5("v2") }));
  const noBody = (name) => ok(S, name, (c, o) => checkObject(c, o, { hasBody: false, key: "cond", etag: md5("v2"), size: 2, text: undefined }));
  const body = (name) => ok(S, name, (c, o) => checkObject(c, o, { hasBody: true, text: "v2" }));
  noBody("cond_get_etagMatches_fail");
  body("cond_get_etagMatches_ok");
  noBody("cond_get_etagDoesNotMatch_fail");
  body("cond_get_etagDoesNotMatch_ok");
  noBody("cond_get_headers_if_none_match");
  noBody("cond_get_uploadedBefore_fail");
  body("cond_get_uploadedAfter_ok");
  noBody("cond_get_uploadedAfter_fail");
  ok(S, "cond_get_missing", (c, v) => c.eq("missing key with onlyIf: null", v, null));
  err(S, "cond_get_quoted_etag", { name: "TypeError", includes: ["wrapped in quotes"] });

  ok(S, "put_storage_class_default", (c, o) => checkObject(c, o, { storageClass: "Standard" }));
  ok(S, "put_storage_class_ia", (c, o) => checkObject(c, o, { storageClass: "InfrequentAccess" }));
  ok(S, "head_storage_class_ia", (c, o) => checkObject(c, o, { storageClass: "InfrequentAccess" }));
  ok(S, "put_storage_class_standard", (c, o) => checkObject(c, o, { storageClass: "Standard" }));

  ok(S, "put_custom_metadata_3k", (c, o) => checkObject(c, o, { key: "meta/3k" }));
  ok(S, "head_custom_metadata_3k", (c, v) => c.eq("3,000-byte value kept (R2 allows 8 KiB)", v, 3000));
  err(S, "put_custom_metadata_9k", { prefix: "put: ", suffix: " (10012)" });

  ok(S, "head_missing", (c, v) => c.eq("null", v, null));
  ok(S, "get_missing", (c, v) => c.eq("null", v, null));
  ok(S, "delete_one", (c, v) => c.eq("undefined", v, U));
  ok(S, "head_after_delete", (c, v) => c.eq("null", v, null));
  ok(S, "delete_missing", (c, v) => c.eq("undefined", v, U));
  ok(S, "delete_many", (c, v) => c.eq("undefined", v, U));
  ok(S, "list_after_delete_many", (c, v) => c.eq("keys", v.keys, []));

  const listKeys = ["list/a", "list/b/1", "list/b/2", "list/c", "list/d/x"];
  ok(S, "list_prefix", (c, v) => {
    c.eq("keys", v.keys, listKeys);
    c.eq("truncated", v.truncated, false);
    c.eq("no cursor when not truncated", v.hasCursor, false);
    c.eq("delimitedPrefixes", v.delimitedPrefixes, []);
    c.that("no httpMetadata without include", v.objects.every((o) => isU(o.httpMetadata)), v.objects.map((o) => o.httpMetadata));
    c.that("no customMetadata without include", v.objects.every((o) => isU(o.customMetadata)), v.objects.map((o) => o.customMetadata));
    c.eq("sizes", v.objects.map((o) => o.size), listKeys.map((k) => k.length));
    c.eq("etags", v.objects.map((o) => o.etag), listKeys.map((k) => md5(k)));
    c.that("uploaded", v.objects.every((o) => recent(o.uploaded)), v.objects.map((o) => o.uploaded));
  });
  ok(S, "list_delimiter", (c, v) => {
    c.eq("keys", v.keys, ["list/a", "list/c"]);
    c.eq("delimitedPrefixes keep the delimiter", v.delimitedPrefixes, ["list/b/", "list/d/"]);
    c.eq("truncated", v.truncated, false);
  });
  ok(S, "list_delimiter_root", (c, v) => {
    c.eq("keys", v.keys, ["cond", "cond-new", "hdrs.txt", "req.txt", "stream.txt"]);
    c.eq("delimitedPrefixes in byte order", v.delimitedPrefixes, ["bin/", "list/", "sc/", "sum/", "ключ/"]);
  });
  ok(S, "list_limit", (c, v) => {
    c.eq("keys", v.keys, listKeys.slice(0, 2));
    c.eq("truncated", v.truncated, true);
    c.that("cursor", v.hasCursor && typeof v.cursor === "string" && v.cursor.length > 0, v.cursor);
  });
  ok(S, "list_paging", (c, v) => {
    c.eq("all keys once, in order", v.flatMap((p) => p.keys), listKeys);
    c.eq("truncated on every page but the last", v.map((p) => p.truncated), v.map((_, i) => i < v.length - 1));
    c.that("at most 2 per page", v.every((p) => p.keys.length <= 2), v);
  });
  ok(S, "list_startAfter", (c, v) => c.eq("keys", v.keys, ["list/c", "list/d/x"]));
  ok(S, "list_include", (c, v) => {
    c.eq("keys", v.keys, listKeys.slice(0, 2));
    c.eq("httpMetadata", v.objects.map((o) => o.httpMetadata), [{ contentType: "text/x-list" }, { contentType: "text/x-list" }]);
    c.eq("customMetadata", v.objects.map((o) => o.customMetadata), [{ k: "list/a" }, { k: "list/b/1" }]);
  });
  ok(S, "list_include_custom_only", (c, v) => {
    c.eq("customMetadata", v.objects.map((o) => o.customMetadata), [{ k: "list/a" }]);
    c.that("no httpMetadata", v.objects.every((o) => isU(o.httpMetadata)), v.objects);
  });
  err(S, "list_no_include_writeHttpMetadata", { name: "TypeError" });
  const maxKeys = { exact: "list: MaxKeys params must be positive integer <= 1000. (10022)" };
  err(S, "list_limit_0", maxKeys);
  err(S, "list_limit_1001", maxKeys);
  ok(S, "list_all_keys", (c, v) => {
    const sorted = [...v].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    c.eq("UTF-8 byte order", v, sorted);
    c.that("the unicode key is last", v.at(-1) === "ключ/ü.txt", v.at(-1));
  });

  const PART = 5 * 1024 * 1024;
  ok(S, "mpu_create", (c, v) => checkObject(c, v, { key: "mp/big", uploadIdType: "string", uploadIdLength: (n) => n > 0 }));
  ok(S, "mpu_upload_part1", (c, v) => {
    c.eq("partNumber", v.partNumber, 1);
    c.eq("part etag is the part's MD5 (R2 since 2023-06-21)", v.etag, v.md5);
  });
  ok(S, "mpu_head_in_progress", (c, v) => c.eq("in-progress upload invisible", v, null));
  ok(S, "mpu_list_in_progress", (c, v) => c.eq("in-progress upload not listed", v, []));
  ok(S, "mpu_upload_part2_resumed", (c, v) => {
    c.eq("partNumber", v.partNumber, 2);
    c.eq("part etag is the part's MD5", v.etag, v.md5);
  });
  err(S, "mpu_complete_wrong_etag", { prefix: "completeMultipartUpload: ", suffix: " (10025)" });
  err(S, "mpu_complete_unknown_part", { prefix: "completeMultipartUpload: ", suffix: " (10025)" });
  ok(S, "mpu_complete", (c, v) => {
    c.that("etag is md5(part md5s)-2", v.expectedEtag && v.object?.etag === v.expectedEtag, v);
    checkObject(c, v.object, {
      key: "mp/big",
      size: PART + 4,
      httpEtag: `"${v.expectedEtag}"`,
      checksums: {},
      httpMetadata: { contentType: "application/x-mp" },
      customMetadata: { m: "1" },
      storageClass: "Standard",
      uploaded: recent,
    });
  });
  ok(S, "mpu_get", (c, v) =>
    checkObject(c, v, { length: PART + 4, allA: true, tail: "tail", size: PART + 4, httpMetadata: { contentType: "application/x-mp" }, customMetadata: { m: "1" }, etag: (e) => /^[0-9a-f]{32}-2$/.test(e) }),
  );
  ok(S, "mpu_get_range_tail", (c, v) => checkObject(c, v, { text: "tail", range: { offset: PART, length: 4 } }));
  ok(S, "mpu_get_range_across_parts", (c, v) => checkObject(c, v, { text: "aata" }));
  err(S, "mpu_upload_after_complete", { prefix: "uploadPart: ", suffix: " (10024)" });
  ok(S, "mpu_abort_after_complete", (c, v) => c.eq("abort after complete is a no-op", v, U));
  ok(S, "mpu_abort_flow", (c, v) => c.eq("abort resolves, nothing stored", v, { abort: U, head: null }));
  err(S, "mpu_upload_after_abort", { prefix: "uploadPart: ", suffix: " (10024)" });
  err(S, "mpu_complete_after_abort", { prefix: "completeMultipartUpload: ", suffix: " (10024)" });
  ok(S, "mpu_abort_again", (c, v) => c.eq("abort is idempotent", v, U));
  err(S, "mpu_unknown_upload_part", { prefix: "uploadPart: ", suffix: " (10024)" });
  err(S, "mpu_small_parts", { prefix: "completeMultipartUpload: ", suffix: " (10011)" });
  ok(S, "mpu_single_small_part", (c, v) =>
    checkObject(c, v, { size: 4, etag: `${md5(Buffer.from(md5("only"), "hex"))}-1` }),
  );
  err(S, "mpu_complete_no_parts", { prefix: "completeMultipartUpload: " });
  err(S, "mpu_part_number_0", { name: "TypeError", exact: "Part number must be between 1 and 10000 (inclusive). Actual value was: 0" });
  ok(S, "mpu_replace_part", (c, v) => c.eq("the re-uploaded part wins", v.text, "second"));

  const ssecMd5 = md5(Buffer.alloc(32, 0x5c));
  ok(S, "ssec_put", (c, o) =>
    checkObject(c, o, { size: 15, ssecKeyMd5: ssecMd5, etag: (e) => /^[0-9a-f]{32}$/.test(e) && e !== md5("encrypted words") }),
  );
  ok(S, "ssec_get", (c, o) => checkObject(c, o, { text: "encrypted words", ssecKeyMd5: ssecMd5 }));
  ok(S, "ssec_get_bytes_key", (c, o) => checkObject(c, o, { text: "encrypted words" }));
  ok(S, "ssec_get_range", (c, o) => checkObject(c, o, { text: "words", range: { offset: 10, length: 5 } }));
  ok(S, "ssec_head", (c, o) => checkObject(c, o, { ssecKeyMd5: ssecMd5, hasBody: false }));
  err(S, "ssec_get_without_key", { prefix: "get: ", suffix: " (10029)" });
  err(S, "ssec_get_other_key", { prefix: "get: ", suffix: " (10003)" });
  err(S, "ssec_key_malformed", { exact: "SSE-C Key has invalid format" });
  ok(S, "ssec_mpu", (c, v) => {
    c.eq("text", v.text, "one part");
    c.eq("ssecKeyMd5", v.object?.ssecKeyMd5, ssecMd5);
  });

  ok(S, "put_key_1024_ok", (c, v) => c.eq("1,024-byte key", v, 1024));
  err(S, "put_key_too_long", { prefix: "put: ", suffix: " (10020)" });
  err(S, "head_key_too_long", { prefix: "head: ", suffix: " (10020)" });
  err(S, "get_key_too_long", { prefix: "get: ", suffix: " (10020)" });
  err(S, "mpu_create_key_too_long", { prefix: "createMultipartUpload: ", suffix: " (10020)" });
}

// ---------------------------------------------------------------------------------------
// routing and reset

function checkProbe(expect) {
  const S = "probe";
  for (const stepName of Object.keys(R[S] ?? {})) {
    if (!stepName.startsWith("$") && !(stepName in expect)) new Check(`${S}.${stepName}`).fail("the driver has no expectation for this step");
  }
  for (const [stepName, want] of Object.entries(expect)) {
    if (typeof want === "function") ok(S, stepName, want);
    else if (want && typeof want === "object" && (want.prefix || want.exact || want.includes || want.suffix)) err(S, stepName, want);
    else ok(S, stepName, (c, v) => c.eq("value", v, want));
  }
}

function checkSeed() {
  ok("seed", "insert_wb_users", (c, v) => c.eq("changes", v, 1));
  ok("seed", "count_wb_users", (c, v) => c.eq("count", v, 1));
}

function checkAfterReset() {
  const S = "after-reset";
  ok(S, "d1_tables", (c, v) => c.eq("only the migrated tables", v, ["d1_migrations", "wb_docs", "wb_users"]));
  ok(S, "d1_migrations", (c, v) => c.eq("migrations applied again", v, ["0001_init.sql"]));
  ok(S, "d1_users_empty", (c, v) => c.eq("rows gone", v, 0));
  ok(S, "vectorize_describe", (c, v) => {
    c.eq("empty", v.vectorCount, 0);
    c.eq("dimensions kept", v.dimensions, 3);
  });
  ok(S, "vectorize_filter_after_reset", (c, v) => c.eq("string metadata index kept", ids(v), ["r1"]));
  ok(S, "vectorize_filter_number_after_reset", (c, v) => c.eq("number metadata index kept", ids(v), ["r1"]));
  ok(S, "r2_list", (c, v) => c.eq("bucket empty", v.keys, []));
}

// ---------------------------------------------------------------------------------------
// self-test of the checks: every step's answer, once falsified, must make some check fail.
// Two falsifications per step: the outcome flipped (a value where the binding threw, an error
// where it returned), and every leaf changed (numbers +1, strings and error texts altered,
// booleans negated, empty arrays and objects filled). A step whose falsified answer still
// passes is reported: its checks could not notice a wrong answer.

function falsify(v) {
  if (typeof v === "number") return v + 1;
  if (typeof v === "string") return `${v}~`;
  if (typeof v === "boolean") return !v;
  if (v === null) return "~null";
  if (Array.isArray(v)) return v.length ? v.map(falsify) : ["~"];
  if (typeof v === "object") {
    const keys = Object.keys(v);
    return keys.length ? Object.fromEntries(keys.map((k) => [k, falsify(v[k])])) : { "~": 1 };
  }
  return "~";
}

function selfTest(checkAll) {
  const [savedR, savedFailures, savedPassed] = [R, failures.splice(0), passed];
  const run = (r) => {
    R = r;
    failures.length = 0;
    checkAll();
    return JSON.stringify(failures);
  };
  const baseline = run(savedR);
  const blind = [];
  let tried = 0;
  for (const [suite, steps] of Object.entries(savedR)) {
    for (const [name, r] of Object.entries(steps)) {
      if (name.startsWith("$")) continue;
      const flipped = r.err ? { ok: "~" } : { err: { name: "Error", message: "~", string: "~" } };
      const changed = r.err ? { err: { name: `${r.err.name}~`, message: `~${r.err.message}`, string: "~" } } : { ok: falsify(r.ok) };
      for (const [kind, m] of [["flipped", flipped], ["changed", changed]]) {
        tried++;
        if (run({ ...savedR, [suite]: { ...steps, [name]: m } }) === baseline) blind.push(`${suite}.${name} (${kind})`);
      }
    }
  }
  R = savedR;
  failures.length = 0;
  failures.push(...savedFailures);
  passed = savedPassed;
  console.log(`self-test: ${tried} falsified answers, ${tried - blind.length} noticed`);
  for (const b of blind) failures.push(`self-test ${b}: the checks do not notice a falsified answer for this step`);
}

// ---------------------------------------------------------------------------------------
// the differential

// Fields whose values are volatile on both sides, replaced by their type.
const VOLATILE = new Set(["duration", "sql_duration_ms", "served_by", "size_after", "version", "uploaded", "uploadIdLength"]);
function normalise(v, key) {
  if (VOLATILE.has(key)) return `<${typeof v === "object" && v ? Object.keys(v).join(",") : typeof v}>`;
  if (typeof v === "string" && BOOKMARK.test(v)) return "<bookmark>";
  if (Array.isArray(v)) return v.map((x) => normalise(x));
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x, k)]));
  return v;
}

const sentinel = (x) => x && typeof x === "object" && Object.keys(x).some((k) => k.startsWith("$"));
function diffValues(a, b, at, out) {
  if (same(a, b)) return;
  const obj = (x) => x && typeof x === "object" && !sentinel(x);
  if (obj(a) && obj(b) && Array.isArray(a) === Array.isArray(b)) {
    const keys = Array.isArray(a) ? [...Array(Math.max(a.length, b.length)).keys()] : [...new Set([...Object.keys(a), ...Object.keys(b)])];
    for (const k of keys) diffValues(a[k], b[k], `${at}.${k}`, out);
    return;
  }
  out.push({ path: at, local: a, tristore: b });
}

// One step's outcome as compared: {ok: value} or {err: "Name: message"}; a step that
// returned on one side and threw on the other is one difference at the step.
function outcome(r) {
  if (!r) return r;
  if (r.err) return { err: `${r.err.name}: ${r.err.message}` };
  return r;
}

// Every difference between Miniflare's local D1/R2 and tristore must match one entry: `path`
// (a regex over "<suite>.<step>[.<field>...]"), the two values (`local`, `tristore`: a value or
// a predicate), `why` tristore's answer is production's (or tristore's documented choice where
// production is unknown), and `row`, the docs/compatibility.md row that documents it.
// Where both sides threw, the difference is at "<step>.err" and the values are the texts.
const errText = (v) => (typeof v === "string" ? v : v?.err);
const errIs = (text) => (v) => errText(v) === text;
const errStarts = (text) => (v) => typeof errText(v) === "string" && errText(v).startsWith(text);
const absent = (v) => v === undefined;
const noMeta = (v) => same(v, U);
const ALLOWED = [
  {
    path: /^r2\.ssec_[a-z_]+(\.|$)/,
    local: () => true,
    tristore: () => true,
    why: "R2 encrypts with the ssecKey and requires it on every read (developers.cloudflare.com/r2/examples/ssec/) [spec 5.2]; Miniflare's local R2 ignores ssecKey: it stores in clear, reads without the key and reports no ssecKeyMd5 [spec 7.2]",
    row: "R2: objects (binding) | ssecKey (SSE-C) [5.2]",
  },
  {
    path: /^d1\.(bind_stored\.ok\.(0|2|5|6|10)\.t|typeof_param_(integer|bool)\.ok\.t)$/,
    local: "real",
    tristore: "integer",
    why: "production D1 binds integral JS numbers (and booleans, sent as 1/0) as INTEGER; Miniflare binds every number with sqlite3_bind_double, so typeof(?) is 'real' [spec 1.4, 7.1]",
    row: "D1: binding calls and results | integral numbers bind as INTEGER [1.4]",
  },
  {
    path: /^d1\.[a-z_0-9]+\.ok(\.\d+)?\.meta\.timings$/,
    local: absent,
    tristore: (v) => same(Object.keys(v ?? {}), ["sql_duration_ms"]),
    why: "production D1 results carry meta.timings.sql_duration_ms (observed [O]); Miniflare's local D1 does not [spec 1.3]",
    row: "D1: binding calls and results | meta.duration, meta.timings.sql_duration_ms [1.3]",
  },
  {
    path: /^d1\.(error_unique|batch_atomic_failure|error_not_null|error_fk|error_fk_delete_parent)\.err$/,
    local: (v) => /^Error: D1_ERROR: .*: SQLITE_CONSTRAINT \(extended: SQLITE_CONSTRAINT_[A-Z]+\)$/.test(errText(v)),
    tristore: (v) => /^Error: D1_ERROR: .*: SQLITE_CONSTRAINT$/.test(errText(v)),
    why: "production's constraint errors read 'D1_ERROR: UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT' (observed [O], spec 1.8); Miniflare appends ' (extended: SQLITE_CONSTRAINT_UNIQUE)'",
    row: "D1: errors, SQL policy, limits | D1_ERROR: <sqlite message>: SQLITE_<CODE> [1.8]",
  },
  {
    path: /^d1\.batch_empty\.err$/,
    local: errIs("Error: D1_ERROR: No SQL statements detected."),
    tristore: errIs("Error: D1_ERROR: No SQL statements detected.: SQLITE_ERROR"),
    why: "production's answer to an empty batch is unknown (spec 8.2); tristore keeps Miniflare's text and appends the code like every D1_ERROR (documented choice)",
    row: "D1: batch and exec | empty batch [1.5]",
  },
  {
    path: /^d1\.error_wrong_param_count\.err$/,
    local: errIs("Error: D1_ERROR: Wrong number of parameter bindings for SQL query."),
    tristore: errIs("Error: D1_ERROR: Wrong number of parameter bindings for SQL query.: SQLITE_RANGE"),
    why: "production's text is unknown (spec 8.3); tristore keeps the local text and appends SQLITE_RANGE (documented choice)",
    row: "D1: binding calls and results | wrong number of bindings [1.10]",
  },
  {
    path: /^r2\..*\.storageClass$/,
    local: "",
    tristore: (v) => v === "Standard" || v === "InfrequentAccess",
    why: "R2 reports the object's storage class (Standard by default, InfrequentAccess when asked); Miniflare ignores storageClass and answers '' [spec 5.3, 7.2]",
    row: "R2: objects (binding) | storageClass value",
  },
  {
    path: /^r2\.mpu_upload_part(1|2_resumed)\.ok\.etag$/,
    local: (v) => typeof v === "string" && !/^[0-9a-f]{32}$/.test(v),
    tristore: (v) => /^[0-9a-f]{32}$/.test(v),
    why: "R2 part etags are the part's MD5 (uploads since 2023-06-21); Miniflare issues random opaque strings [spec 5.6]",
    row: "R2: objects (binding) | multipart: part numbers 1..10000, replacing re-uploads, part etag = MD5 of the part [5.6]",
  },
  {
    path: /^r2\.put_custom_metadata_3k$/,
    local: errIs("Error: put: Your metadata headers exceed the maximum allowed metadata size. (10012)"),
    tristore: (v) => v?.ok?.key === "meta/3k",
    why: "R2 allows 8,192 bytes of custom metadata; Miniflare caps it at 2,048 [spec 5.8, 8.13]",
    row: "R2: objects (binding) | custom metadata at most 8,192 bytes (10012, R2's text) [5.8]",
  },
  {
    path: /^r2\.head_custom_metadata_3k\.ok$/,
    local: null,
    tristore: 3000,
    why: "follows from the 8 KiB custom-metadata limit: the 3,000-byte value was stored [spec 5.8]",
    row: "R2: objects (binding) | custom metadata at most 8,192 bytes (10012, R2's text) [5.8]",
  },
  {
    path: /^r2\.list_[A-Za-z_]+\.ok\.objects\.\d+\.(httpMetadata|customMetadata)$/,
    local: {},
    tristore: noMeta,
    why: "without `include`, R2 list items carry no httpMetadata/customMetadata (docs; compat date >= 2022-08-04) [spec 5.3, 5.5]; Miniflare sends empty fields, so the Worker sees {}",
    row: "R2: objects (binding) | list without include: objects carry no httpMetadata / customMetadata, so writeHttpMetadata() throws workerd's TypeError [5.3, 5.5]",
  },
  {
    path: /^r2\.list_no_include_writeHttpMetadata$/,
    local: (v) => v?.ok === "no error",
    tristore: errStarts("TypeError: HTTP metadata unknown for key `list/a`."),
    why: "follows from the previous entry: workerd's writeHttpMetadata() throws a TypeError for a listed object without httpMetadata, as documented [spec 5.3]",
    row: "R2: objects (binding) | list without include: objects carry no httpMetadata / customMetadata, so writeHttpMetadata() throws workerd's TypeError [5.3, 5.5]",
  },
  {
    path: /^r2\.list_(limit|include)\.ok\.cursor$/,
    local: (v) => typeof v === "string" && v.length > 0,
    tristore: (v) => typeof v === "string" && v.length > 0,
    why: "list cursors are opaque [spec 5.5]; each side only has to accept its own (list_paging checks that)",
    row: "R2: objects (binding) | list: byte order, prefix, delimiter, cursor, startAfter, limit 1..1000, include, truncated, cursor only when truncated [5.5]",
  },
  {
    path: /^r2\.get_range_invalid_headers$/,
    local: (v) => v?.ok?.hasBody === true && same(v.ok.range, { offset: 0, length: 10 }),
    tristore: errIs("Error: get: The requested range is not satisfiable (10039)"),
    why: "a single well-formed range starting past the end is InvalidRange (10039), as the same range given as an R2Range (spec 5.5); Miniflare ignores an unsatisfiable Range header and returns the whole object. Production's handling of Range headers is open (spec 8.18)",
    row: "R2: objects (binding) | Range header (get with range: Headers) whose one range starts past the end",
  },
  {
    path: /^r2\.mpu_complete_no_parts$/,
    local: (v) => v?.ok?.etag === "d41d8cd98f00b204e9800998ecf8427e-0" && v.ok.size === 0,
    tristore: errIs("Error: completeMultipartUpload: You must specify at least one part (10025)"),
    why: "production's answer is unknown; S3 refuses an empty part list ('You must specify at least one part') and tristore does the same, where Miniflare completes a 0-byte object with etag <md5 of nothing>-0",
    row: "R2: objects (binding) | complete with no parts",
  },
];

// Whether docs/compatibility.md has the row "<section> | <first cell>" (backticks aside).
const compatibility = readFileSync(path.join(here, "../../../docs/compatibility.md"), "utf8").replaceAll("`", "");
function documented(row) {
  const [section, cell] = row.split(" | ");
  const start = compatibility.indexOf(`\n## ${section}\n`);
  if (start < 0) return false;
  const next = compatibility.indexOf("\n## ", start + 1);
  return compatibility.slice(start, next < 0 ? undefined : next).includes(`\n| ${cell} |`);
}

function matches(want, v) {
  return typeof want === "function" ? want(v) : same(want, v);
}

function checkDiff(local, remote) {
  const diffs = [];
  for (const suite of ["d1", "r2"]) {
    const a = normalise(local[suite] ?? {});
    const b = normalise(remote[suite] ?? {});
    for (const stepName of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const [x, y] = [outcome(a[stepName]), outcome(b[stepName])];
      if (x && y && ("err" in x) !== ("err" in y)) {
        if (!same(x, y)) diffs.push({ path: `${suite}.${stepName}`, local: x, tristore: y });
      } else diffValues(x, y, `${suite}.${stepName}`, diffs);
    }
  }
  const used = new Map();
  console.log(`\ndifferential: ${diffs.length} differing value(s) between Miniflare's local D1/R2 and tristore`);
  for (const d of diffs) {
    const entry = ALLOWED.find((e) => e.path.test(d.path) && matches(e.local, d.local) && matches(e.tristore, d.tristore));
    if (entry) {
      if (!used.has(entry)) used.set(entry, []);
      used.get(entry).push(d);
      passed++;
    } else {
      failures.push(`differential ${d.path}: not in the allow-list\n      Miniflare local ${show(d.local)}\n      tristore        ${show(d.tristore)}`);
    }
  }
  for (const e of ALLOWED) {
    const ds = used.get(e);
    if (!ds) {
      console.log(`  (allow-list entry not needed this run: ${e.path})`);
      continue;
    }
    if (!e.row || !documented(e.row)) {
      failures.push(`differential ${ds[0].path}: an explained difference that no docs/compatibility.md row documents (${e.row ?? e.why}); add the row and name it in ALLOWED as "<section> | <first cell>"\n      Miniflare local ${show(ds[0].local)}\n      tristore        ${show(ds[0].tristore)}`);
      continue;
    }
    console.log(`  allowed: ${e.why}\n    docs/compatibility.md: ${e.row}\n    ${ds.length} value(s), e.g. ${ds[0].path}: local ${show(ds[0].local)}, tristore ${show(ds[0].tristore)}`);
  }
}

// ---------------------------------------------------------------------------------------

const suites = ["vectorize", "d1", "r2"];

// The whole conformance run on one Miniflare: every suite, the routing probe and the
// seed, then a reset and what must hold after it; then the checks, and their self-test.
async function conformance(Miniflare, options, bindings, mode) {
  const names = (o) => Object.keys(o);
  const probe = `probe?vectorize=${names(bindings.vectorize)}&d1=${names(bindings.d1Databases)}&r2=${names(bindings.r2Buckets)}`;
  R = await runWorker(Miniflare, options, [...suites, probe, "seed"]);
  await reset();
  R = { ...R, ...(await runWorker(Miniflare, options, ["after-reset"])) };
  const checkAll = () => {
    checkVectorize();
    checkD1();
    checkR2();
    checkSeed();
    checkProbe(routingExpectations(mode));
    checkAfterReset();
  };
  checkAll();
  selfTest(checkAll);
}

async function main() {
  const started = Date.now();
  const dump = {};
  const mf4 = await load("miniflare");
  const mf5 = await load("miniflare5");
  const t = (u) => withToken(u);

  if (mode === "mf4") {
    console.log(`Miniflare 4 (${pkgVersion("miniflare")}), one URL per binding, against ${base}`);
    if (token) await resetNeedsToken();
    await reset();
    const vectorize = {
      VECTORIZE: { index_name: "wb-index", remoteProxyConnectionString: t(`${base}/vectorize/wb-index`) },
      OTHER_INDEX: { index_name: "wb-index-2", remoteProxyConnectionString: t(base) },
      NOWHERE_INDEX: { index_name: "x", remoteProxyConnectionString: t(base) },
      GHOST_INDEX: { index_name: "no-such-index", remoteProxyConnectionString: t(`${base}/vectorize/no-such-index`) },
      BADTOKEN_INDEX: { index_name: "wb-index", remoteProxyConnectionString: withToken(`${base}/vectorize/wb-index`, "wrong-token") },
      NOTOKEN_INDEX: { index_name: "wb-index", remoteProxyConnectionString: new URL(`${base}/vectorize/wb-index`) },
    };
    const d1Databases = {
      DB: { id: "wb-db", remoteProxyConnectionString: t(`${base}/d1/wb-db`) },
      OTHER_DB: { id: "wb-db-2", remoteProxyConnectionString: t(base) },
      NOWHERE_DB: { id: "x", remoteProxyConnectionString: t(base) },
      GHOST_DB: { id: "no-such-db", remoteProxyConnectionString: t(`${base}/d1/no-such-db`) },
      BADTOKEN_DB: { id: "wb-db", remoteProxyConnectionString: withToken(`${base}/d1/wb-db`, "wrong-token") },
      KIND_DB: { id: "wb-index", remoteProxyConnectionString: t(`${base}/vectorize/wb-index`) },
    };
    const r2Buckets = {
      BUCKET: { id: "wb-bucket", remoteProxyConnectionString: t(`${base}/r2/wb-bucket`) },
      OTHER_BUCKET: { id: "wb-bucket-2", remoteProxyConnectionString: t(base) },
      NOWHERE_BUCKET: { id: "x", remoteProxyConnectionString: t(base) },
      GHOST_BUCKET: { id: "no-such-bucket", remoteProxyConnectionString: t(`${base}/r2/no-such-bucket`) },
      BADTOKEN_BUCKET: { id: "wb-bucket", remoteProxyConnectionString: withToken(`${base}/r2/wb-bucket`, "wrong-token") },
      KIND_BUCKET: { id: "wb-db", remoteProxyConnectionString: t(`${base}/d1/wb-db`) },
    };
    await conformance(mf4.Miniflare, v4Options({ vectorize, d1Databases, r2Buckets }), { vectorize, d1Databases, r2Buckets }, "mf4");
    dump.tristore = R;
  } else if (mode === "mf5") {
    console.log(`Miniflare 5 (${pkgVersion("miniflare5")}), one URL for all bindings, against ${base}`);
    await reset();
    const url = t(base);
    for (const [k, v] of Object.entries({
      VECTORIZE: "wb-index",
      DB: "wb-db",
      BUCKET: "wb-bucket",
      ALT_INDEX: "wb-index-2",
      ALT_DB: "wb-db-2",
      ALT_BUCKET: "wb-bucket-2",
      OTHER_DB: "wb-db",
      GHOST_INDEX: "no-such-index",
      GHOST_DB: "no-such-db",
      GHOST_BUCKET: "no-such-bucket",
    }))
      url.searchParams.set(k, v);
    const vectorize = Object.fromEntries(["VECTORIZE", "ALT_INDEX", "OTHER_INDEX", "NOWHERE_INDEX", "GHOST_INDEX"].map((n) => [n, { index_name: n.toLowerCase(), remoteProxyConnectionString: url }]));
    const d1Databases = Object.fromEntries(["DB", "ALT_DB", "OTHER_DB", "NOWHERE_DB", "GHOST_DB"].map((n) => [n, { id: n.toLowerCase(), remoteProxyConnectionString: url }]));
    const r2Buckets = Object.fromEntries(["BUCKET", "ALT_BUCKET", "OTHER_BUCKET", "NOWHERE_BUCKET", "GHOST_BUCKET"].map((n) => [n, { id: n.toLowerCase(), remoteProxyConnectionString: url }]));
    const options = mf5.convertV4MiniflareOptions(v4Options({ vectorize, d1Databases, r2Buckets }));
    await conformance(mf5.Miniflare, options, { vectorize, d1Databases, r2Buckets }, "mf5");
    dump.tristore = R;
  } else {
    console.log(`Differential: Miniflare 4 local D1/R2 vs tristore (${base})`);
    const dir = mkdtempSync(path.join(tmpdir(), "wb-local-"));
    let local;
    try {
      console.log(" Miniflare local:");
      local = await runWorker(mf4.Miniflare, v4Options({ d1Databases: ["DB"], r2Buckets: ["BUCKET"], d1Persist: path.join(dir, "d1"), r2Persist: path.join(dir, "r2") }), ["d1", "r2"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await reset();
    console.log(" tristore:");
    const remote = await runWorker(
      mf4.Miniflare,
      v4Options({
        d1Databases: { DB: { id: "wb-db-2", remoteProxyConnectionString: t(`${base}/d1/wb-db-2`) } },
        r2Buckets: { BUCKET: { id: "wb-bucket-2", remoteProxyConnectionString: t(`${base}/r2/wb-bucket-2`) } },
      }),
      ["d1", "r2"],
    );
    dump.local = local;
    dump.tristore = remote;
    for (const [k, v] of Object.entries({ local, tristore: remote })) {
      for (const s of ["d1", "r2"]) if (v[s]?.$suiteError) failures.push(`${k} ${s} suite threw: ${show(v[s])}`);
    }
    // The tristore half must also pass the conformance checks, so that "equal" means "right".
    R = remote;
    checkD1();
    checkR2();
    checkDiff(local, remote);
  }

  if (dumpPath) writeFileSync(dumpPath, JSON.stringify(dump, null, 1));
  console.log(`\n${mode}: ${passed} checks passed, ${failures.length} failed (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  for (const f of failures) console.log(`FAIL ${f}`);
  if (failures.length) process.exit(1);
  console.log("OK");
}

function routingExpectations(which) {
  const migrated = (c, v) => c.that("the migrated database", Array.isArray(v) && v.includes("wb_users") && v.includes("wb_docs") && v.includes("wb_people"), v);
  const second = (c, v) => c.that("the second database (no migrations, untouched)", same(v, []) || same(v, ["d1_migrations"]), v);
  const e = {
    "vectorize:VECTORIZE": 3,
    "vectorize_query:VECTORIZE": 1,
    "vectorize:OTHER_INDEX": 4,
    "vectorize_query:OTHER_INDEX": 0,
    "vectorize:NOWHERE_INDEX": { prefix: "INDEX_GET_ERROR (code = ", includes: ["NOWHERE_INDEX"] },
    "vectorize_query:NOWHERE_INDEX": { prefix: "INDEX_GET_ERROR (code = ", includes: ["NOWHERE_INDEX"] },
    "vectorize:GHOST_INDEX": { prefix: "INDEX_GET_ERROR (code = ", includes: ["no-such-index"] },
    "vectorize_query:GHOST_INDEX": { prefix: "INDEX_GET_ERROR (code = ", includes: ["no-such-index"] },
    "d1:DB": migrated,
    "d1:NOWHERE_DB": { prefix: "D1_ERROR: ", includes: ["NOWHERE_DB"] },
    "d1:GHOST_DB": { prefix: "D1_ERROR: ", includes: ["no-such-db"] },
    "r2:BUCKET": "main",
    "r2_head:BUCKET": (c, v) => checkObject(c, v, { key: "marker", size: 4, etag: md5("main") }),
    "r2:OTHER_BUCKET": null,
    "r2_head:OTHER_BUCKET": null,
    "r2:NOWHERE_BUCKET": { prefix: "get: ", includes: ["NOWHERE_BUCKET"] },
    "r2_head:NOWHERE_BUCKET": { prefix: "head: ", includes: ["NOWHERE_BUCKET"] },
    "r2:GHOST_BUCKET": { prefix: "get: ", suffix: " (10006)" },
    "r2_head:GHOST_BUCKET": { prefix: "head: ", suffix: " (10006)" },
  };
  if (which === "mf4") {
    Object.assign(e, {
      "d1:OTHER_DB": second,
      "vectorize:BADTOKEN_INDEX": { prefix: "INDEX_GET_ERROR (code = ", includes: ["token"] },
      "vectorize_query:BADTOKEN_INDEX": { prefix: "INDEX_GET_ERROR (code = ", includes: ["token"] },
      "vectorize:NOTOKEN_INDEX": { prefix: "INDEX_GET_ERROR (code = ", includes: ["token"] },
      "vectorize_query:NOTOKEN_INDEX": { prefix: "INDEX_GET_ERROR (code = ", includes: ["token"] },
      "d1:BADTOKEN_DB": { prefix: "D1_ERROR: ", includes: ["token"] },
      "d1:KIND_DB": { prefix: "D1_ERROR: ", includes: ["KIND_DB"] },
      "r2:BADTOKEN_BUCKET": { prefix: "get: ", includes: ["token"] },
      "r2_head:BADTOKEN_BUCKET": { prefix: "head: ", includes: ["token"] },
      "r2:KIND_BUCKET": { prefix: "get: ", includes: ["KIND_BUCKET"] },
      "r2_head:KIND_BUCKET": { prefix: "head: ", includes: ["KIND_BUCKET"] },
    });
  } else {
    Object.assign(e, {
      "vectorize:ALT_INDEX": 4,
      "vectorize_query:ALT_INDEX": 0,
      "d1:ALT_DB": second,
      "d1:OTHER_DB": migrated, // the query parameter wins over the config's binding map
      "r2:ALT_BUCKET": null,
      "r2_head:ALT_BUCKET": null,
    });
  }
  return e;
}

await main();
