// What a developer runs into, answered the way Cloudflare answers it.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { embed } from "../src/embed";
import { SOURDOUGH } from "./fixtures";
import { api, count, upload, uploadAndIngest } from "./helpers";

describe("ingest", () => {
  it("a key nobody uploaded is a 404 and writes nothing", async () => {
    expect(await env.metacogna_vault.get("user-1/doc-ghost/ghost.md")).toBeNull();
    expect(await env.metacogna_vault.head("user-1/doc-ghost/ghost.md")).toBeNull();

    const res = await api("POST", "/api/ingest", { key: "user-1/doc-ghost/ghost.md" });
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: "no object at this key: upload it first", key: "user-1/doc-ghost/ghost.md" });
    expect(await count("documents")).toBe(0);
    expect(await env.VECTOR_INDEX.getByIds(["doc-ghost-chunk-0"])).toEqual([]);
  });

  it("a binary upload is a 415 and writes nothing", async () => {
    const up = await upload("user-1", "scan.pdf", "%PDF-1.7 not really", "application/pdf");
    const res = await api("POST", "/api/ingest", { key: up.key });
    expect(res.status).toBe(415);
    expect(res.body.contentType).toBe("application/pdf");
    expect(await count("documents")).toBe(0);
    // the object itself stays: the upload succeeded
    expect((await env.metacogna_vault.head(up.key))?.httpMetadata?.contentType).toBe("application/pdf");
  });
});

describe("presigned URLs", () => {
  it("a tampered signature is refused by the S3 API", async () => {
    const signed = await api("POST", "/api/r2/upload-url", { userId: "user-1", filename: "a.txt" });
    const url = new URL(signed.body.uploadUrl);
    const sig = url.searchParams.get("X-Amz-Signature")!;
    url.searchParams.set("X-Amz-Signature", (sig[0] === "0" ? "1" : "0") + sig.slice(1));
    const put = await fetch(url, { method: "PUT", body: "x" });
    expect(put.status).toBe(403);
    expect(await put.text()).toContain("<Code>SignatureDoesNotMatch</Code>");
    expect(await env.metacogna_vault.head(signed.body.key)).toBeNull();
  });

  it("a URL for one key cannot write another", async () => {
    const signed = await api("POST", "/api/r2/upload-url", { userId: "user-1", filename: "a.txt" });
    const url = new URL(signed.body.uploadUrl);
    url.pathname = url.pathname.replace(/a\.txt$/, "b.txt");
    const put = await fetch(url, { method: "PUT", body: "x" });
    expect(put.status).toBe(403);
    expect(await put.text()).toContain("<Code>SignatureDoesNotMatch</Code>");
  });

  it("an expired URL is refused", async () => {
    const signed = await api("POST", "/api/r2/upload-url", { userId: "user-1", filename: "late.txt", expiresIn: 1 });
    await new Promise((r) => setTimeout(r, 2100));
    const put = await fetch(signed.body.uploadUrl, { method: "PUT", body: "x" });
    expect(put.status).toBe(403);
    // R2 answers 403 ExpiredRequest (Cloudflare's docs list 400 for code 10018; Miniflare's
    // capture of real R2 shows 403)
    expect(await put.text()).toContain("<Code>ExpiredRequest</Code><Message>Request has expired</Message>");
    expect(await env.metacogna_vault.head(signed.body.key)).toBeNull();
  });

  it("the Worker refuses bad requests itself", async () => {
    expect((await api("POST", "/api/r2/upload-url", { filename: "a.txt" })).status).toBe(400);
    expect((await api("POST", "/api/r2/upload-url", { userId: "u", filename: "../a.txt" })).status).toBe(400);
    expect((await api("POST", "/api/r2/upload-url", { userId: "u", filename: "a.txt", expiresIn: 604801 })).status).toBe(400);
  });
});

describe("Vectorize", () => {
  it("a filter on a property without a metadata index matches nothing, as on Cloudflare", async () => {
    await uploadAndIngest("user-1", "sourdough.md", SOURDOUGH, "text/markdown", "doc-sourdough");
    const q = embed("sourdough starter")!;
    // docId and chunkIndex have metadata indexes (wrangler.jsonc's metadata_indexes) ...
    expect((await env.VECTOR_INDEX.query(q, { topK: 5, filter: { docId: "doc-sourdough" } })).count).toBeGreaterThan(0);
    const byIndex = await env.VECTOR_INDEX.query(q, { topK: 5, filter: { chunkIndex: { $gte: 1 } }, returnMetadata: "all" });
    expect(byIndex.count).toBeGreaterThan(0);
    for (const m of byIndex.matches) expect(m.metadata!.chunkIndex).toBeGreaterThanOrEqual(1);
    // ... title is stored in every vector's metadata but not indexed: the filter sees nothing
    const byTitle = await env.VECTOR_INDEX.query(q, { topK: 5, filter: { title: "sourdough" } });
    expect(byTitle).toEqual({ count: 0, matches: [] });
    const stored = await env.VECTOR_INDEX.getByIds(["doc-sourdough-chunk-0"]);
    expect(stored[0].metadata?.title).toBe("sourdough");
  });

  it("insert keeps an existing id's vector (first write wins); upsert replaces it", async () => {
    const a = embed("alpha")!;
    const b = embed("bravo")!;
    await env.VECTOR_INDEX.insert([{ id: "v1", values: a, metadata: { docId: "first" } }]);
    await env.VECTOR_INDEX.insert([{ id: "v1", values: b, metadata: { docId: "second" } }]);
    expect((await env.VECTOR_INDEX.getByIds(["v1"]))[0].metadata).toEqual({ docId: "first" });
    await env.VECTOR_INDEX.upsert([{ id: "v1", values: b, metadata: { docId: "second" } }]);
    expect((await env.VECTOR_INDEX.getByIds(["v1"]))[0].metadata).toEqual({ docId: "second" });
    const best = await env.VECTOR_INDEX.query(b, { topK: 1, filter: { docId: "second" } });
    expect(best.matches[0].id).toBe("v1");
    expect(best.matches[0].score).toBeCloseTo(1, 5);
  });

  it("a vector of the wrong size is the binding's VECTOR_QUERY_ERROR 40006", async () => {
    await expect(env.VECTOR_INDEX.query([0.1, 0.2, 0.3], { topK: 1 })).rejects.toThrow(
      /^VECTOR_QUERY_ERROR \(code = 40006\): invalid query vector, expected 768 dimensions, and got 3 dimensions$/,
    );
  });

  it("topK over 50 with full metadata is VECTOR_QUERY_ERROR 40025", async () => {
    await expect(env.VECTOR_INDEX.query(embed("bread")!, { topK: 51, returnMetadata: "all" })).rejects.toThrow(/VECTOR_QUERY_ERROR \(code = 40025\)/);
  });
});

describe("D1", () => {
  it("foreign keys are enforced, as D1 always does", async () => {
    const insert = env.DB.prepare("INSERT INTO chat_messages (id, sessionId, role, content, createdAt) VALUES ('m1', 'no-such-session', 'user', 'hi', 0)");
    await expect(insert.run()).rejects.toThrow(/^D1_ERROR: FOREIGN KEY constraint failed/);
    expect(await count("chat_messages")).toBe(0);
  });

  it("a failing statement rolls the whole batch back", async () => {
    const now = Date.now();
    await expect(
      env.DB.batch([
        env.DB.prepare("INSERT INTO chat_sessions (id, title, createdAt, updatedAt) VALUES ('s1', 't', ?, ?)").bind(now, now),
        env.DB.prepare("INSERT INTO chat_sessions (id, title, createdAt, updatedAt) VALUES ('s1', 't', ?, ?)").bind(now, now),
      ]),
    ).rejects.toThrow(/UNIQUE constraint failed: chat_sessions.id/);
    expect(await count("chat_sessions")).toBe(0);
  });

  it("an unknown table is D1_ERROR ... SQLITE_ERROR", async () => {
    await expect(env.DB.prepare("SELECT * FROM nope").all()).rejects.toThrow(/^D1_ERROR: no such table: nope: SQLITE_ERROR$/);
  });

  it("integers stay integers (Miniflare's local D1 would store 42 as REAL)", async () => {
    const row = await env.DB.prepare("SELECT typeof(?) AS t, ? AS v").bind(42, 42).first<{ t: string; v: number }>();
    expect(row).toEqual({ t: "integer", v: 42 });
  });
});

describe("chat", () => {
  it("an unknown session is a 404, and a query without words a 400", async () => {
    const unknown = await api("POST", "/api/chat", { query: "bread", sessionId: "nope" });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ error: "no such chat session", sessionId: "nope" });
    expect((await api("POST", "/api/chat", { query: "?!" })).status).toBe(400);
    expect(await count("chat_messages")).toBe(0);
  });
});
