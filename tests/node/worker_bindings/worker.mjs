// A module Worker that calls every method of env.VECTORIZE (Vectorize v2), env.DB (D1) and
// env.BUCKET (R2), plus their error paths, and answers with what it saw as JSON. It asserts
// nothing itself: driver.mjs runs it under Miniflare (workerd's real binding classes) and
// holds the expectations, so the same Worker serves the conformance runs and the
// differential run (Miniflare's own D1/R2 against tristore).
//
// GET /<suite>?<options>  ->  {"<step>": {"ok": value} | {"err": {"name", "message"}}, ...}
// Suites: vectorize, d1, r2, probe (routing checks), after-reset.
//
// Values are made JSON-safe by enc(): undefined -> {"$undefined": true}, Date -> {"$date": iso},
// ArrayBuffer / typed arrays -> {"$bytes": [...]}, R2 objects -> r2obj().


function enc(v) {
  if (v === undefined) return { $undefined: true };
  if (v === null || typeof v === "string" || typeof v === "boolean") return v;
  if (typeof v === "number") return Number.isFinite(v) ? v : { $number: String(v) };
  if (typeof v === "bigint") return { $bigint: String(v) };
  if (v instanceof Date) return { $date: Number.isNaN(v.getTime()) ? "Invalid Date" : v.toISOString() };
  if (v instanceof ArrayBuffer) return { $bytes: Array.from(new Uint8Array(v)) };
  if (ArrayBuffer.isView(v)) return { $bytes: Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) };
  if (Array.isArray(v)) return v.map(enc);
  if (typeof v === "object") {
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = enc(x);
    return o;
  }
  return { $other: String(v) };
}

function errOf(e) {
  return { name: e?.name ?? typeof e, message: String(e?.message ?? e), string: String(e) };
}

function recorder() {
  const results = {};
  const step = async (name, fn) => {
    if (name in results) throw new Error(`duplicate step ${name}`);
    try {
      results[name] = { ok: enc(await fn()) };
    } catch (e) {
      results[name] = { err: errOf(e) };
    }
  };
  return { results, step };
}

// ---------------------------------------------------------------------------------------
// helpers

const te = new TextEncoder();
const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
const digest = async (alg, bytes) => hex(await crypto.subtle.digest(alg, bytes));

function httpMeta(m) {
  if (m === undefined) return undefined;
  const o = {};
  for (const [k, v] of Object.entries(m)) o[k] = v instanceof Date ? { $date: v.toISOString() } : v;
  return o;
}

// Everything an R2Object / R2ObjectBody carries, JSON-safe. `hasBody` tells an R2ObjectBody
// (get succeeded) from an R2Object (head, put, or a get whose onlyIf failed).
function r2obj(o) {
  if (o === null) return null;
  if (o === undefined) return undefined;
  return {
    class: o.constructor?.name,
    key: o.key,
    version: o.version,
    size: o.size,
    etag: o.etag,
    httpEtag: o.httpEtag,
    uploaded: o.uploaded instanceof Date ? { $date: o.uploaded.toISOString() } : enc(o.uploaded),
    httpMetadata: httpMeta(o.httpMetadata),
    customMetadata: o.customMetadata,
    range: o.range,
    checksums: o.checksums ? o.checksums.toJSON() : o.checksums,
    storageClass: o.storageClass,
    ssecKeyMd5: o.ssecKeyMd5,
    hasBody: "body" in o,
  };
}

async function r2body(o) {
  if (o === null) return null;
  const meta = r2obj(o);
  if ("body" in o) meta.text = await o.text();
  return meta;
}

async function r2bytes(o) {
  if (o === null) return null;
  const meta = r2obj(o);
  if ("body" in o) meta.bytes = Array.from(new Uint8Array(await o.arrayBuffer()));
  return meta;
}

function r2list(l) {
  return {
    keys: l.objects.map((o) => o.key),
    objects: l.objects.map(r2obj),
    delimitedPrefixes: l.delimitedPrefixes,
    truncated: l.truncated,
    cursor: l.cursor,
    hasCursor: "cursor" in l && l.cursor !== undefined,
  };
}

function fixedStream(text) {
  const bytes = te.encode(text);
  const { readable, writable } = new FixedLengthStream(bytes.length);
  const w = writable.getWriter();
  w.write(bytes).then(() => w.close());
  return readable;
}

// ---------------------------------------------------------------------------------------
// Vectorize (v2 binding, workerd's VectorizeIndexImpl). The index has 3 dimensions, cosine,
// metadata indexes g:string and n:number, and starts empty.

async function vectorizeSuite(env) {
  const V = env.VECTORIZE;
  const { results, step } = recorder();
  const sortById = (a) => [...a].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));

  await step("describe_empty", () => V.describe());
  await step("insert", () =>
    V.insert([
      { id: "a", values: [1, 0, 0], metadata: { g: "x", n: 1, tag: "alpha" } },
      { id: "b", values: [0, 1, 0], metadata: { g: "y", n: 2 } },
      { id: "c", values: [0.9, 0.1, 0], metadata: { g: "x", n: 3 }, namespace: "ns1" },
      { id: "d", values: new Float32Array([0, 0, 1]), metadata: { g: "z", n: 4 } },
    ]),
  );
  await step("describe_after_insert", () => V.describe());
  await step("query_default", () => V.query([1, 0, 0], { topK: 3 }));
  await step("query_no_options", () => V.query([1, 0, 0]));
  await step("query_float32_values", () => V.query(new Float32Array([1, 0, 0]), { topK: 2, returnValues: true }));
  await step("query_float64", () => V.query(new Float64Array([0, 1, 0]), { topK: 1 }));
  await step("query_meta_all", () => V.query([1, 0, 0], { topK: 1, returnMetadata: "all" }));
  await step("query_meta_indexed", () => V.query([1, 0, 0], { topK: 1, returnMetadata: "indexed" }));
  await step("query_meta_none", () => V.query([1, 0, 0], { topK: 1, returnMetadata: "none" }));
  await step("query_meta_true", () => V.query([1, 0, 0], { topK: 1, returnMetadata: true }));
  await step("query_filter_eq", () => V.query([1, 0, 0], { topK: 10, filter: { g: "x" } }));
  await step("query_filter_explicit_eq", () => V.query([1, 0, 0], { topK: 10, filter: { g: { $eq: "y" } } }));
  await step("query_filter_in", () => V.query([1, 0, 0], { topK: 10, filter: { g: { $in: ["y", "z"] } } }));
  await step("query_filter_ne", () => V.query([1, 0, 0], { topK: 10, filter: { g: { $ne: "x" } } }));
  await step("query_filter_nin", () => V.query([1, 0, 0], { topK: 10, filter: { g: { $nin: ["x", "y"] } } }));
  await step("query_filter_range", () => V.query([1, 0, 0], { topK: 10, filter: { n: { $gte: 2, $lt: 4 } } }));
  await step("query_filter_two_keys", () => V.query([1, 0, 0], { topK: 10, filter: { g: "x", n: { $gt: 1 } } }));
  await step("query_filter_unindexed", () => V.query([1, 0, 0], { topK: 10, filter: { tag: "alpha" } }));
  await step("query_namespace", () => V.query([1, 0, 0], { topK: 10, namespace: "ns1", returnMetadata: "all" }));
  await step("query_namespace_and_filter", () => V.query([1, 0, 0], { topK: 10, namespace: "ns1", filter: { g: "y" } }));
  await step("query_namespace_unknown", () => V.query([1, 0, 0], { topK: 10, namespace: "nope" }));
  await step("queryById", () => V.queryById("a", { topK: 2, returnValues: true }));
  await step("queryById_filter", () => V.queryById("a", { topK: 5, filter: { g: "y" } }));

  // insert: the first write wins, no error; upsert replaces values, metadata and namespace.
  await step("insert_existing", () => V.insert([{ id: "a", values: [0, 1, 0], metadata: { g: "changed" } }]));
  await step("getByIds_after_insert_existing", async () => sortById(await V.getByIds(["a"])));
  await step("upsert", () => V.upsert([{ id: "a", values: [0, 0, 1], metadata: { g: "w" } }, { id: "e", values: [1, 1, 0], namespace: "ns2" }]));
  await step("describe_after_upsert", () => V.describe());
  await step("getByIds_after_upsert", async () => sortById(await V.getByIds(["a", "e"])));
  await step("query_after_upsert", () => V.query([0, 0, 1], { topK: 1, filter: { g: "w" }, returnMetadata: "all" }));
  await step("getByIds_unknown_omitted", async () => sortById(await V.getByIds(["b", "zzz", "c"])));
  await step("getByIds_all_unknown", () => V.getByIds(["zzz"]));
  await step("upsert_float32_precision", () => V.upsert([{ id: "f", values: [0.1, 0.2, 58.8] }]));
  await step("getByIds_float32_precision", () => V.getByIds(["f"]));

  await step("deleteByIds", () => V.deleteByIds(["b", "zzz"]));
  await step("describe_after_delete", () => V.describe());
  await step("getByIds_after_delete", () => V.getByIds(["b"]));
  await step("query_after_delete", () => V.query([0, 1, 0], { topK: 10 }));

  // Caps and limits.
  await step("topK_50_values_ok", async () => (await V.query([1, 0, 0], { topK: 50, returnValues: true })).count);
  await step("topK_100_indexed_ok", async () => (await V.query([1, 0, 0], { topK: 100, returnMetadata: "indexed" })).count);
  await step("topK_51_values", () => V.query([1, 0, 0], { topK: 51, returnValues: true }));
  await step("topK_51_meta_all", () => V.query([1, 0, 0], { topK: 51, returnMetadata: "all" }));
  await step("topK_101", () => V.query([1, 0, 0], { topK: 101 }));
  const many = (n, prefix) => Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, values: [1, i + 1, 0] }));
  await step("insert_1000_ok", () => V.insert(many(1000, "m")));
  await step("describe_after_1000", () => V.describe());
  await step("insert_1001", () => V.insert(many(1001, "o")));
  await step("upsert_1001", () => V.upsert(many(1001, "o")));
  await step("getByIds_after_1001", () => V.getByIds(["o0", "o1000"]));
  await step("deleteByIds_1000", () => V.deleteByIds(many(1000, "m").map((v) => v.id)));
  await step("describe_after_delete_1000", () => V.describe());

  // Errors the service reports.
  await step("query_wrong_dims", () => V.query([1, 0]));
  await step("query_wrong_dims_4", () => V.query([1, 0, 0, 0]));
  await step("insert_wrong_dims", () => V.insert([{ id: "bad", values: [1, 2] }]));
  await step("upsert_wrong_dims", () => V.upsert([{ id: "bad", values: [1, 2, 3, 4] }]));
  await step("getByIds_bad_not_stored", () => V.getByIds(["bad"]));
  await step("queryById_unknown", () => V.queryById("no-such-id"));
  await step("filter_unknown_operator", () => V.query([1, 0, 0], { filter: { g: { $regex: "x" } } }));
  await step("filter_dollar_key", () => V.query([1, 0, 0], { filter: { $or: [{ g: "x" }] } }));
  await step("returnMetadata_false", () => V.query([1, 0, 0], { returnMetadata: false }));
  // Rejected by the binding itself (never sent).
  await step("returnMetadata_invalid_string", () => V.query([1, 0, 0], { returnMetadata: "some" }));
  // "indexed" returns what the metadata indexes took: strings cut at 64 bytes.
  await step("upsert_long_string", () => V.upsert([{ id: "long", values: [0, 1, 1], metadata: { g: "é".repeat(40), n: 7, tag: "t" } }]));
  await step("query_long_string_indexed", () => V.query([0, 1, 1], { topK: 1, returnMetadata: "indexed" }));
  await step("query_long_string_all", () => V.query([0, 1, 1], { topK: 1, returnMetadata: "all" }));
  await step("deleteByIds_long", () => V.deleteByIds(["long"]));
  await step("describe_final", () => V.describe());
  return results;
}

// ---------------------------------------------------------------------------------------
// D1 (workerd's d1-api.ts). The database has none of the wb_* tables at the start.

async function d1Suite(env) {
  const DB = env.DB;
  const { results, step } = recorder();

  await step("exec_create", () =>
    DB.exec(
      [
        "CREATE TABLE wb_people (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL, name TEXT, age)",
        "CREATE TABLE wb_notes (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES wb_people(id), body TEXT)",
        "CREATE TABLE wb_vals (v)",
      ].join("\n"),
    ),
  );
  const ins = DB.prepare("INSERT INTO wb_people (email, name, age) VALUES (?, ?, ?)");
  await step("run_insert", () => ins.bind("a@x", "Ann", 30).run());
  await step("run_insert_returning", () =>
    DB.prepare("INSERT INTO wb_people (email, name, age) VALUES (?1, ?2, ?3) RETURNING id, name").bind("b@x", "Bob", 41).run(),
  );
  await step("first", () => DB.prepare("SELECT * FROM wb_people WHERE id = ?").bind(1).first());
  await step("first_col", () => DB.prepare("SELECT * FROM wb_people WHERE id = ?").bind(2).first("name"));
  await step("first_col_missing", () => DB.prepare("SELECT * FROM wb_people WHERE id = ?").bind(1).first("nope"));
  await step("first_no_rows", () => DB.prepare("SELECT * FROM wb_people WHERE id = ?").bind(99).first());
  await step("first_col_no_rows", () => DB.prepare("SELECT * FROM wb_people WHERE id = ?").bind(99).first("name"));
  await step("all", () => DB.prepare("SELECT id, email, name, age FROM wb_people ORDER BY id").all());
  await step("all_no_rows", () => DB.prepare("SELECT id FROM wb_people WHERE id > 100").all());
  await step("run_select", () => DB.prepare("SELECT id, name FROM wb_people ORDER BY id").run());
  await step("raw", () => DB.prepare("SELECT id, email, name, age FROM wb_people ORDER BY id").raw());
  await step("raw_columnNames", () => DB.prepare("SELECT id, name FROM wb_people ORDER BY id").raw({ columnNames: true }));
  await step("raw_columnNames_no_rows", () => DB.prepare("SELECT id, name FROM wb_people WHERE id > 100").raw({ columnNames: true }));
  await step("raw_duplicate_columns", () => DB.prepare("SELECT 1 AS x, 2 AS x").raw());
  await step("all_duplicate_columns", () => DB.prepare("SELECT 1 AS x, 2 AS y, 3 AS x").all());
  await step("update_meta", () => DB.prepare("UPDATE wb_people SET age = age + 1").run());
  await step("select_meta", () => DB.prepare("SELECT count(*) AS n FROM wb_people").all());
  await step("create_keeps_last_row_id", () => DB.prepare("CREATE TABLE wb_tmp (x)").run());

  await step("batch", () =>
    DB.batch([
      ins.bind("c@x", "Cy", 20),
      ins.bind("d@x", "Di", null),
      DB.prepare("SELECT count(*) AS n FROM wb_people"),
    ]),
  );
  await step("batch_atomic_failure", () => DB.batch([ins.bind("e@x", "Ed", 50), ins.bind("a@x", "dup", 1)]));
  await step("batch_rolled_back", () => DB.prepare("SELECT email FROM wb_people ORDER BY id").raw());
  await step("batch_empty", () => DB.batch([]));

  // bind() conversions and what SQLite stored.
  const vals = DB.prepare("INSERT INTO wb_vals (v) VALUES (?)");
  await step("bind_values", () =>
    DB.batch([
      vals.bind(42),
      vals.bind(1.5),
      vals.bind(-7),
      vals.bind("str"),
      vals.bind(null),
      vals.bind(true),
      vals.bind(false),
      vals.bind(new Uint8Array([1, 2, 255]).buffer),
      vals.bind([0, 1, 2]),
      vals.bind(new Uint8Array([9, 8])),
      vals.bind(2 ** 40),
    ]).then((r) => r.length),
  );
  await step("bind_stored", () => DB.prepare("SELECT v, typeof(v) AS t FROM wb_vals ORDER BY rowid").all().then((r) => r.results));
  await step("typeof_param_integer", () => DB.prepare("SELECT typeof(?) AS t, ? AS v").bind(42, 42).first());
  await step("typeof_param_real", () => DB.prepare("SELECT typeof(?1) AS t, ?1 AS v").bind(2.5).first());
  await step("typeof_param_bool", () => DB.prepare("SELECT typeof(?1) AS t, ?1 AS v").bind(true).first());
  await step("typeof_param_blob", () => DB.prepare("SELECT typeof(?1) AS t, ?1 AS v, length(?1) AS n").bind(new Uint8Array([0, 255]).buffer).first());
  await step("blob_literal", () => DB.prepare("SELECT x'00ff10' AS b").first("b"));
  await step("bind_undefined", () => DB.prepare("SELECT ?").bind(undefined));
  await step("bind_object", () => DB.prepare("SELECT ?").bind({ a: 1 }));
  await step("bind_bigint", () => DB.prepare("SELECT ?").bind(1n));
  await step("unicode_round_trip", () => DB.prepare("SELECT ?1 AS s, length(?1) AS n").bind("héllo ✓ 😀").first());
  await step("many_rows", async () => {
    const r = await DB.prepare("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) SELECT x, 'row ' || x AS s FROM c").all();
    return { n: r.results.length, first: r.results[0], last: r.results.at(-1), rows_written: r.meta.rows_written };
  });
  await step("bind_replaces", () => DB.prepare("SELECT ?1 AS a").bind(1).bind(2).first("a"));

  // Errors.
  await step("error_no_table", () => DB.prepare("SELECT * FROM nope").all());
  await step("error_no_table_first", () => DB.prepare("SELECT * FROM nope").first());
  await step("error_no_table_run", () => DB.prepare("INSERT INTO nope VALUES (1)").run());
  await step("error_no_table_raw", () => DB.prepare("SELECT * FROM nope").raw());
  await step("error_syntax", () => DB.prepare("SELEC 1").all());
  await step("error_unique", () => ins.bind("a@x", "again", 1).run());
  await step("error_not_null", () => ins.bind(null, "nobody", 1).run());
  await step("error_fk", () => DB.prepare("INSERT INTO wb_notes (person_id, body) VALUES (?, ?)").bind(999, "orphan").run());
  await step("fk_ok", () => DB.prepare("INSERT INTO wb_notes (person_id, body) VALUES (?, ?)").bind(1, "note").run());
  await step("error_fk_delete_parent", () => DB.prepare("DELETE FROM wb_people WHERE id = 1").run());
  await step("error_wrong_param_count", () => DB.prepare("SELECT ?1, ?2").bind(1).all());
  await step("exec_error_line1", () => DB.exec("INSERT INTO nope VALUES (1)"));
  await step("exec_error_line2", () => DB.exec("INSERT INTO wb_vals (v) VALUES ('exec-line-1')\nINSERT INTO nope VALUES (1)"));
  await step("exec_error_line2_rolled_back", () => DB.prepare("SELECT count(*) AS n FROM wb_vals WHERE v = 'exec-line-1'").first("n"));
  await step("exec_ok", () => DB.exec("INSERT INTO wb_vals (v) VALUES ('e1')\n\nINSERT INTO wb_vals (v) VALUES ('e2')"));
  await step("exec_ok_stored", () => DB.prepare("SELECT count(*) AS n FROM wb_vals WHERE v IN ('e1', 'e2')").first("n"));

  // Sessions and bookmarks.
  const bookmarks = {};
  const s = DB.withSession("first-primary");
  await step("session_bookmark_initial", () => s.getBookmark());
  await step("session_read", async () => {
    const r = await s.prepare("SELECT count(*) AS n FROM wb_people").first("n");
    bookmarks.b1 = s.getBookmark();
    return { n: r, bookmark: bookmarks.b1 };
  });
  await step("session_write", async () => {
    const r = await s.prepare("INSERT INTO wb_vals (v) VALUES ('session')").run();
    bookmarks.b2 = s.getBookmark();
    return { changes: r.meta.changes, bookmark: bookmarks.b2 };
  });
  await step("session_batch", async () => {
    const r = await s.batch([s.prepare("INSERT INTO wb_vals (v) VALUES ('session2')"), s.prepare("SELECT count(*) AS n FROM wb_vals")]);
    bookmarks.b3 = s.getBookmark();
    return { n: r[1].results[0].n, bookmark: bookmarks.b3 };
  });
  await step("session_read_again", async () => {
    await s.prepare("SELECT 1").first();
    bookmarks.b4 = s.getBookmark();
    return bookmarks.b4;
  });
  await step("session_from_bookmark", async () => {
    const s2 = DB.withSession(bookmarks.b2);
    const before = s2.getBookmark();
    const n = await s2.prepare("SELECT count(*) AS n FROM wb_vals WHERE v = 'session'").first("n");
    return { before, n, after: s2.getBookmark() };
  });
  await step("session_unconstrained", async () => {
    const s3 = DB.withSession();
    const before = s3.getBookmark();
    await s3.prepare("SELECT 1").first();
    return { before, after: s3.getBookmark() };
  });
  await step("session_first_unconstrained_string", async () => {
    const s4 = DB.withSession("first-unconstrained");
    const before = s4.getBookmark();
    await s4.prepare("SELECT 1").first();
    return { before, after: s4.getBookmark() };
  });
  await step("session_no_exec", () => typeof DB.withSession("first-primary").exec);

  // A bigger write moves size_after.
  await step("size_before", () => DB.prepare("SELECT 1").run());
  await step("size_grows", () => DB.prepare("INSERT INTO wb_vals (v) VALUES (?)").bind("x".repeat(100000)).run());
  return results;
}

// ---------------------------------------------------------------------------------------
// R2 (workerd's native R2Bucket). The bucket starts empty.

async function r2Suite(env) {
  const B = env.BUCKET;
  const { results, step } = recorder();
  const etags = {};

  const expiry = new Date("2030-01-02T03:04:05.000Z");
  await step("put_string", () =>
    B.put("docs/a.txt", "hello", {
      httpMetadata: {
        contentType: "text/plain",
        contentLanguage: "en",
        contentDisposition: "inline",
        cacheControl: "max-age=60",
        cacheExpiry: expiry,
      },
      customMetadata: { owner: "me", "x-y": "z" },
    }).then(r2obj),
  );
  await step("head", () => B.head("docs/a.txt").then(r2obj));
  await step("head_writeHttpMetadata", async () => {
    const h = new Headers();
    (await B.head("docs/a.txt")).writeHttpMetadata(h);
    return Object.fromEntries(h);
  });
  await step("get", () => B.get("docs/a.txt").then(r2body));
  await step("get_json_bytes", async () => {
    const o = await B.get("docs/a.txt");
    return { bytes: Array.from(await o.bytes()), bodyUsed: o.bodyUsed };
  });
  await step("put_arraybuffer", () => B.put("bin/x", new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).buffer).then(r2obj));
  await step("put_view", () => B.put("bin/view", new Uint8Array([5, 6, 7]).subarray(1)).then(r2obj));
  await step("get_view", () => B.get("bin/view").then(r2bytes));
  await step("put_null", () => B.put("bin/empty", null).then(r2obj));
  await step("get_empty", () => B.get("bin/empty").then(r2bytes));
  await step("put_stream", () => B.put("stream.txt", fixedStream("hello world"), { httpMetadata: { contentType: "text/x-stream" } }).then(r2obj));
  await step("get_stream", () => B.get("stream.txt").then(r2body));
  await step("put_request_body", () => B.put("req.txt", new Request("http://x/", { method: "POST", body: "request body" }).body).then(r2obj));
  await step("get_request_body", () => B.get("req.txt").then(r2body));
  await step("put_stream_unknown_length", () =>
    B.put("stream2.txt", new ReadableStream({ start(c) { c.enqueue(te.encode("x")); c.close(); } })),
  );
  await step("put_httpMetadata_headers", () =>
    B.put("hdrs.txt", "h", {
      httpMetadata: new Headers({ "content-type": "text/html", "cache-control": "no-store", expires: "Wed, 21 Oct 2037 07:28:00 GMT" }),
    }).then(r2obj),
  );
  await step("head_httpMetadata_headers", () => B.head("hdrs.txt").then(r2obj));
  await step("put_unicode_key", () => B.put("ключ/ü.txt", "unicode", { customMetadata: { "ключ": "значение ✓" }, httpMetadata: { contentType: "text/plain; charset=utf-8" } }).then(r2obj));
  await step("head_unicode_key", () => B.head("ключ/ü.txt").then(r2obj));
  await step("get_unicode_key", () => B.get("ключ/ü.txt").then(r2body));

  // Ranges.
  await step("get_range_offset_length", () => B.get("bin/x", { range: { offset: 2, length: 3 } }).then(r2bytes));
  await step("get_range_offset", () => B.get("bin/x", { range: { offset: 7 } }).then(r2bytes));
  await step("get_range_length", () => B.get("bin/x", { range: { length: 2 } }).then(r2bytes));
  await step("get_range_suffix", () => B.get("bin/x", { range: { suffix: 4 } }).then(r2bytes));
  await step("get_range_clamped", () => B.get("bin/x", { range: { offset: 8, length: 100 } }).then(r2bytes));
  await step("get_range_suffix_clamped", () => B.get("bin/x", { range: { suffix: 100 } }).then(r2bytes));
  await step("get_range_headers", () => B.get("bin/x", { range: new Headers({ range: "bytes=1-3" }) }).then(r2bytes));
  await step("get_range_headers_suffix", () => B.get("bin/x", { range: new Headers({ range: "bytes=-2" }) }).then(r2bytes));
  await step("get_range_headers_open", () => B.get("bin/x", { range: new Headers({ range: "bytes=8-" }) }).then(r2bytes));
  await step("get_range_invalid_offset", () => B.get("bin/x", { range: { offset: 10 } }).then(r2bytes));
  await step("get_range_invalid_length", () => B.get("bin/x", { range: { offset: 2, length: 0 } }).then(r2bytes));
  await step("get_range_invalid_headers", () => B.get("bin/x", { range: new Headers({ range: "bytes=20-30" }) }).then(r2bytes));
  await step("get_range_negative", () => B.get("bin/x", { range: { offset: -1 } }));
  await step("get_range_suffix_and_offset", () => B.get("bin/x", { range: { suffix: 1, offset: 1 } }));

  // Checksums.
  await step("put_md5_hex_ok", () => B.put("sum/md5", "hello", { md5: "5d41402abc4b2a76b9719d911017c592" }).then(r2obj));
  await step("put_md5_binary_ok", async () =>
    B.put("sum/md5bin", "hello", { md5: await crypto.subtle.digest("MD5", te.encode("hello")) }).then(r2obj),
  );
  await step("put_sha1_ok", () => B.put("sum/sha1", "hello", { sha1: "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d" }).then(r2obj));
  await step("head_sha1", () => B.head("sum/sha1").then(r2obj));
  await step("put_sha256_ok", () =>
    B.put("sum/sha256", "hello", { sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" }).then(r2obj),
  );
  await step("head_sha256", () => B.head("sum/sha256").then(r2obj));
  await step("put_md5_wrong", () => B.put("sum/bad-md5", "hello", { md5: "00000000000000000000000000000000" }).then(r2obj));
  await step("head_md5_wrong", () => B.head("sum/bad-md5").then(r2obj));
  await step("put_sha1_wrong", () => B.put("sum/bad-sha1", "hello", { sha1: "0000000000000000000000000000000000000000" }).then(r2obj));
  await step("put_sha256_wrong", () =>
    B.put("sum/bad-sha256", "hello", { sha256: "0000000000000000000000000000000000000000000000000000000000000000" }).then(r2obj),
  );
  await step("head_sha256_wrong", () => B.head("sum/bad-sha256").then(r2obj));
  await step("put_md5_short", () => B.put("sum/short", "hello", { md5: "abcd" }));

  // Conditional writes and reads.
  await step("cond_put_v1", async () => {
    const o = await B.put("cond", "v1");
    etags.v1 = o.etag;
    return r2obj(o);
  });
  await step("cond_put_etagMatches_ok", async () => {
    const o = await B.put("cond", "v2", { onlyIf: { etagMatches: etags.v1 } });
    etags.v2 = o?.etag;
    return r2obj(o);
  });
  await step("cond_put_etagMatches_fail", () => B.put("cond", "v3", { onlyIf: { etagMatches: etags.v1 } }).then(r2obj));
  await step("cond_put_etagDoesNotMatch_star_exists", () => B.put("cond", "v4", { onlyIf: { etagDoesNotMatch: "*" } }).then(r2obj));
  await step("cond_put_etagDoesNotMatch_star_new", () => B.put("cond-new", "n", { onlyIf: { etagDoesNotMatch: "*" } }).then(r2obj));
  await step("cond_put_headers_fail", () => B.put("cond", "v5", { onlyIf: new Headers({ "if-match": `"${etags.v1}"` }) }).then(r2obj));
  await step("cond_get_after_puts", () => B.get("cond").then(r2body));
  await step("cond_get_etagMatches_fail", () => B.get("cond", { onlyIf: { etagMatches: "0123456789abcdef0123456789abcdef" } }).then(r2body));
  await step("cond_get_etagMatches_ok", () => B.get("cond", { onlyIf: { etagMatches: etags.v2 } }).then(r2body));
  await step("cond_get_etagDoesNotMatch_fail", () => B.get("cond", { onlyIf: { etagDoesNotMatch: etags.v2 } }).then(r2body));
  await step("cond_get_etagDoesNotMatch_ok", () => B.get("cond", { onlyIf: { etagDoesNotMatch: etags.v1 } }).then(r2body));
  await step("cond_get_headers_if_none_match", () => B.get("cond", { onlyIf: new Headers({ "if-none-match": `"${etags.v2}"` }) }).then(r2body));
  await step("cond_get_uploadedBefore_fail", () => B.get("cond", { onlyIf: { uploadedBefore: new Date(0) } }).then(r2body));
  await step("cond_get_uploadedAfter_ok", () => B.get("cond", { onlyIf: { uploadedAfter: new Date(0) } }).then(r2body));
  await step("cond_get_uploadedAfter_fail", () => B.get("cond", { onlyIf: { uploadedAfter: new Date(Date.now() + 3600_000) } }).then(r2body));
  await step("cond_get_missing", () => B.get("cond-missing", { onlyIf: { etagMatches: "x" } }).then(r2body));
  await step("cond_get_quoted_etag", () => B.get("cond", { onlyIf: { etagMatches: `"${etags.v2}"` } }));

  // Storage class.
  await step("put_storage_class_default", () => B.put("sc/default", "x").then(r2obj));
  await step("put_storage_class_ia", () => B.put("sc/ia", "x", { storageClass: "InfrequentAccess" }).then(r2obj));
  await step("head_storage_class_ia", () => B.head("sc/ia").then(r2obj));
  await step("put_storage_class_standard", () => B.put("sc/std", "x", { storageClass: "Standard" }).then(r2obj));

  // Custom metadata sizes: R2 allows 8,192 bytes.
  await step("put_custom_metadata_3k", () => B.put("meta/3k", "x", { customMetadata: { big: "m".repeat(3000) } }).then(r2obj));
  await step("head_custom_metadata_3k", async () => (await B.head("meta/3k"))?.customMetadata?.big?.length ?? null);
  await B.delete("meta/3k");
  await step("put_custom_metadata_9k", () => B.put("meta/9k", "x", { customMetadata: { big: "m".repeat(9000) } }).then(r2obj));

  // Missing keys, deletes.
  await step("head_missing", () => B.head("no/such/key"));
  await step("get_missing", () => B.get("no/such/key"));
  await step("delete_one", () => B.delete("docs/a.txt"));
  await step("head_after_delete", () => B.head("docs/a.txt"));
  await step("delete_missing", () => B.delete("no/such/key"));
  await B.put("del/1", "1");
  await B.put("del/2", "2");
  await step("delete_many", () => B.delete(["del/1", "del/2", "del/3"]));
  await step("list_after_delete_many", () => B.list({ prefix: "del/" }).then(r2list));

  // Listing.
  for (const k of ["list/a", "list/b/1", "list/b/2", "list/c", "list/d/x"]) {
    await B.put(k, k, { httpMetadata: { contentType: "text/x-list" }, customMetadata: { k } });
  }
  await step("list_prefix", () => B.list({ prefix: "list/" }).then(r2list));
  await step("list_delimiter", () => B.list({ prefix: "list/", delimiter: "/" }).then(r2list));
  await step("list_delimiter_root", () => B.list({ delimiter: "/" }).then(r2list));
  await step("list_limit", () => B.list({ prefix: "list/", limit: 2 }).then(r2list));
  await step("list_paging", async () => {
    const pages = [];
    let cursor;
    for (let i = 0; i < 10; i++) {
      const l = await B.list({ prefix: "list/", limit: 2, cursor });
      pages.push({ keys: l.objects.map((o) => o.key), truncated: l.truncated });
      if (!l.truncated) break;
      cursor = l.cursor;
    }
    return pages;
  });
  await step("list_startAfter", () => B.list({ prefix: "list/", startAfter: "list/b/2" }).then(r2list));
  await step("list_include", () => B.list({ prefix: "list/", include: ["httpMetadata", "customMetadata"], limit: 2 }).then(r2list));
  await step("list_include_custom_only", () => B.list({ prefix: "list/a", include: ["customMetadata"] }).then(r2list));
  await step("list_no_include_writeHttpMetadata", async () => {
    const [o] = (await B.list({ prefix: "list/a" })).objects;
    o.writeHttpMetadata(new Headers());
    return "no error";
  });
  await step("list_limit_0", () => B.list({ limit: 0 }).then(r2list));
  await step("list_limit_1001", () => B.list({ limit: 1001 }).then(r2list));
  await step("list_all_keys", () => B.list().then((l) => l.objects.map((o) => o.key)));

  // Multipart.
  const PART = 5 * 1024 * 1024;
  const part1 = new Uint8Array(PART).fill(97);
  const tail = te.encode("tail");
  const mp = {};
  await step("mpu_create", async () => {
    const u = await B.createMultipartUpload("mp/big", {
      httpMetadata: { contentType: "application/x-mp" },
      customMetadata: { m: "1" },
    });
    mp.id = u.uploadId;
    return { key: u.key, uploadIdType: typeof u.uploadId, uploadIdLength: u.uploadId.length };
  });
  await step("mpu_upload_part1", async () => {
    const p = await B.resumeMultipartUpload("mp/big", mp.id).uploadPart(1, part1);
    mp.p1 = p;
    return { ...p, md5: await digest("MD5", part1) };
  });
  await step("mpu_head_in_progress", () => B.head("mp/big"));
  await step("mpu_list_in_progress", () => B.list({ prefix: "mp/" }).then((l) => l.objects.map((o) => o.key)));
  await step("mpu_upload_part2_resumed", async () => {
    const p = await B.resumeMultipartUpload("mp/big", mp.id).uploadPart(2, tail);
    mp.p2 = p;
    return { ...p, md5: await digest("MD5", tail) };
  });
  await step("mpu_complete_wrong_etag", () =>
    B.resumeMultipartUpload("mp/big", mp.id).complete([mp.p1, { partNumber: 2, etag: "0123456789abcdef0123456789abcdef" }]).then(r2obj),
  );
  await step("mpu_complete_unknown_part", () =>
    B.resumeMultipartUpload("mp/big", mp.id).complete([mp.p1, { partNumber: 3, etag: mp.p2.etag }]).then(r2obj),
  );
  await step("mpu_complete", async () => {
    const o = await B.resumeMultipartUpload("mp/big", mp.id).complete([mp.p1, mp.p2]);
    const md5s = new Uint8Array(32);
    md5s.set(new Uint8Array(await crypto.subtle.digest("MD5", part1)), 0);
    md5s.set(new Uint8Array(await crypto.subtle.digest("MD5", tail)), 16);
    return { object: r2obj(o), expectedEtag: `${await digest("MD5", md5s)}-2` };
  });
  await step("mpu_get", async () => {
    const o = await B.get("mp/big");
    const bytes = new Uint8Array(await o.arrayBuffer());
    return { ...r2obj(o), length: bytes.length, allA: bytes.subarray(0, PART).every((b) => b === 97), tail: new TextDecoder().decode(bytes.subarray(PART)) };
  });
  await step("mpu_get_range_tail", () => B.get("mp/big", { range: { suffix: 4 } }).then(r2body));
  await step("mpu_get_range_across_parts", () => B.get("mp/big", { range: { offset: PART - 2, length: 4 } }).then(r2body));
  await step("mpu_upload_after_complete", () => B.resumeMultipartUpload("mp/big", mp.id).uploadPart(3, "late"));
  await step("mpu_abort_after_complete", () => B.resumeMultipartUpload("mp/big", mp.id).abort());

  await step("mpu_abort_flow", async () => {
    const u = await B.createMultipartUpload("mp/aborted");
    await u.uploadPart(1, "x");
    const r = await u.abort();
    mp.aborted = u.uploadId;
    return { abort: enc(r), head: await B.head("mp/aborted") };
  });
  await step("mpu_upload_after_abort", () => B.resumeMultipartUpload("mp/aborted", mp.aborted).uploadPart(2, "y"));
  await step("mpu_complete_after_abort", async () =>
    B.resumeMultipartUpload("mp/aborted", mp.aborted).complete([{ partNumber: 1, etag: await digest("MD5", te.encode("x")) }]).then(r2obj),
  );
  await step("mpu_abort_again", () => B.resumeMultipartUpload("mp/aborted", mp.aborted).abort());
  await step("mpu_unknown_upload_part", () => B.resumeMultipartUpload("mp/x", "no-such-upload-id").uploadPart(1, "x"));
  await step("mpu_small_parts", async () => {
    const u = await B.createMultipartUpload("mp/small");
    const a = await u.uploadPart(1, "small");
    const b = await u.uploadPart(2, "x");
    return u.complete([a, b]).then(r2obj);
  });
  await step("mpu_single_small_part", async () => {
    const u = await B.createMultipartUpload("mp/single");
    const a = await u.uploadPart(1, "only");
    return u.complete([a]).then(r2obj);
  });
  await step("mpu_complete_no_parts", async () => {
    const u = await B.createMultipartUpload("mp/none");
    return u.complete([]).then(r2obj);
  });
  await step("mpu_part_number_0", async () => {
    const u = await B.createMultipartUpload("mp/pn0");
    return u.uploadPart(0, "x");
  });
  await step("mpu_replace_part", async () => {
    const u = await B.createMultipartUpload("mp/replace");
    await u.uploadPart(1, "first");
    const p = await u.uploadPart(1, "second");
    const o = await u.complete([p]);
    return { object: r2obj(o), text: await (await B.get("mp/replace")).text() };
  });

  // SSE-C: the key as workerd takes it (64 hex characters or 32 bytes).
  const SSEC = "5c".repeat(32);
  const SSEC_BYTES = new Uint8Array(32).fill(0x5c);
  const OTHER = "a7".repeat(32);
  await step("ssec_put", () => B.put("ssec/a", "encrypted words", { ssecKey: SSEC }).then(r2obj));
  await step("ssec_get", () => B.get("ssec/a", { ssecKey: SSEC }).then(r2body));
  await step("ssec_get_bytes_key", () => B.get("ssec/a", { ssecKey: SSEC_BYTES }).then(r2body));
  await step("ssec_get_range", () => B.get("ssec/a", { ssecKey: SSEC, range: { offset: 10, length: 5 } }).then(r2body));
  await step("ssec_head", () => B.head("ssec/a").then(r2obj));
  await step("ssec_get_without_key", () => B.get("ssec/a").then(r2body));
  await step("ssec_get_other_key", () => B.get("ssec/a", { ssecKey: OTHER }).then(r2body));
  await step("ssec_key_malformed", () => B.put("ssec/b", "x", { ssecKey: "xyz" }).then(r2obj));
  await step("ssec_mpu", async () => {
    const u = await B.createMultipartUpload("ssec/mp", { ssecKey: SSEC });
    const p = await u.uploadPart(1, "one part", { ssecKey: SSEC });
    const done = await u.complete([p]);
    const got = await B.get("ssec/mp", { ssecKey: SSEC });
    return { object: r2obj(done), text: await got.text() };
  });

  // Key rules.
  const longKey = "k".repeat(1025);
  await step("put_key_1024_ok", () => B.put("k".repeat(1024), "x").then((o) => o.key.length));
  await step("put_key_too_long", () => B.put(longKey, "x").then(r2obj));
  await step("head_key_too_long", () => B.head(longKey).then(r2obj));
  await step("get_key_too_long", () => B.get(longKey).then(r2obj));
  await step("mpu_create_key_too_long", () => B.createMultipartUpload(longKey));
  return results;
}

// ---------------------------------------------------------------------------------------
// Routing probes: which resource each binding reaches, or what it throws.
// ?vectorize=A,B&d1=C&r2=D  (binding names)

async function probeSuite(env, url) {
  const { results, step } = recorder();
  const names = (k) => (url.searchParams.get(k) ?? "").split(",").filter(Boolean);
  if (env.BUCKET) await env.BUCKET.put("marker", "main");
  for (const n of names("vectorize")) {
    await step(`vectorize:${n}`, async () => {
      if (!env[n]) throw new Error(`no binding ${n}`);
      return (await env[n].describe()).dimensions;
    });
    await step(`vectorize_query:${n}`, async () => {
      if (!env[n]) throw new Error(`no binding ${n}`);
      return (await env[n].query([1, 0, 0, 0].slice(0, (await env[n].describe()).dimensions), { topK: 1 })).count;
    });
  }
  for (const n of names("d1")) {
    await step(`d1:${n}`, async () => {
      if (!env[n]) throw new Error(`no binding ${n}`);
      const r = await env[n].prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name").raw();
      return r.map((x) => x[0]);
    });
  }
  for (const n of names("r2")) {
    await step(`r2:${n}`, async () => {
      if (!env[n]) throw new Error(`no binding ${n}`);
      const o = await env[n].get("marker");
      return o === null ? null : await o.text();
    });
    await step(`r2_head:${n}`, async () => {
      if (!env[n]) throw new Error(`no binding ${n}`);
      return r2obj(await env[n].head("marker"));
    });
  }
  return results;
}

// Writes to the migrated table, so that after-reset can see it emptied.
async function seedSuite(env) {
  const { results, step } = recorder();
  await step("insert_wb_users", () => env.DB.prepare("INSERT INTO wb_users (email) VALUES (?)").bind("seed@x").run().then((r) => r.meta.changes));
  await step("count_wb_users", () => env.DB.prepare("SELECT count(*) AS n FROM wb_users").first("n"));
  return results;
}

// After POST /cdn-cgi/tristore/reset: every resource is empty again, D1 migrated, the
// Vectorize metadata indexes kept.
async function afterResetSuite(env) {
  const { results, step } = recorder();
  await step("d1_tables", () =>
    env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name").raw().then((r) => r.map((x) => x[0])),
  );
  await step("d1_migrations", () => env.DB.prepare("SELECT name FROM d1_migrations ORDER BY id").raw().then((r) => r.map((x) => x[0])));
  await step("d1_users_empty", () => env.DB.prepare("SELECT count(*) AS n FROM wb_users").first("n"));
  await step("vectorize_describe", () => env.VECTORIZE.describe());
  await step("vectorize_filter_after_reset", async () => {
    await env.VECTORIZE.insert([{ id: "r1", values: [1, 0, 0], metadata: { g: "again", n: 5 } }, { id: "r2", values: [0, 1, 0], metadata: { g: "other" } }]);
    return env.VECTORIZE.query([1, 0, 0], { topK: 5, filter: { g: "again" } });
  });
  await step("vectorize_filter_number_after_reset", () => env.VECTORIZE.query([1, 0, 0], { topK: 5, filter: { n: { $gt: 4 } } }));
  await step("r2_list", () => env.BUCKET.list().then(r2list));
  return results;
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const suite = url.pathname.slice(1);
    try {
      let results;
      if (suite === "vectorize") results = await vectorizeSuite(env);
      else if (suite === "d1") results = await d1Suite(env);
      else if (suite === "r2") results = await r2Suite(env);
      else if (suite === "probe") results = await probeSuite(env, url);
      else if (suite === "seed") results = await seedSuite(env);
      else if (suite === "after-reset") results = await afterResetSuite(env);
      else return new Response(`unknown suite ${suite}`, { status: 404 });
      return Response.json(results);
    } catch (e) {
      return Response.json({ $suiteError: errOf(e), stack: String(e?.stack) }, { status: 500 });
    }
  },
};
