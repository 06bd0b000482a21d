// Metacogna's document upload flow and chat query flow, end to end through the Worker's real
// bindings, with every store checked afterwards: the R2 object, the vectors, the D1 rows.
import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import { DIMENSIONS } from "../src/embed";
import { MODEL, PROVIDER } from "../src/llm";
import { chunk } from "../src/text";
import { SOURDOUGH, TIDE_POOLS } from "./fixtures";
import { api, count, d1Rest, norm, upload, uploadAndIngest, type Uploaded } from "./helpers";

describe("the bindings", () => {
  it("are workerd's own implementations, not mocks", () => {
    expect(env.VECTOR_INDEX.constructor.name).toBe("VectorizeIndexImpl");
    expect(env.DB.constructor.name).toBe("D1Database");
    expect(env.metacogna_vault.constructor.name).toBe("R2Bucket");
  });

  it("reach tristore: the D1 binding sees the schema tristore migrated from wrangler.jsonc", async () => {
    const tables = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%' ORDER BY name").all<{ name: string }>();
    expect(tables.results.map((t) => t.name)).toEqual(["chat_messages", "chat_sessions", "d1_migrations", "documents", "memory_streams", "training_examples", "users"]);
    // recorded as `wrangler d1 migrations apply` records it
    const applied = await env.DB.prepare("SELECT name FROM d1_migrations").all<{ name: string }>();
    expect(applied.results.map((m) => m.name)).toEqual(["0001_initial.sql"]);
    const info = await env.VECTOR_INDEX.describe();
    expect(info.dimensions).toBe(DIMENSIONS);
    expect(info.vectorCount).toBe(0);
  });
});

describe("document upload flow", () => {
  let up: Uploaded;

  it("POST /api/r2/upload-url signs a PUT for {userId}/{docId}/{filename} on the S3 API", async () => {
    const res = await api("POST", "/api/r2/upload-url", { userId: "user-1", filename: "sourdough.md", docId: "doc-sourdough" });
    expect(res.status).toBe(200);
    expect(res.body.key).toBe("user-1/doc-sourdough/sourdough.md");
    const url = new URL(res.body.uploadUrl);
    expect(`${url.origin}${url.pathname}`).toBe(`${inject("tristore").s3}/metacogna-vault/user-1/doc-sourdough/sourdough.md`);
    expect(url.searchParams.get("X-Amz-Algorithm")).toBe("AWS4-HMAC-SHA256");
    expect(url.searchParams.get("X-Amz-Credential")).toMatch(/^tristore\/\d{8}\/auto\/s3\/aws4_request$/);
    expect(url.searchParams.get("X-Amz-Expires")).toBe("3600");
    expect(url.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
  });

  it("the frontend PUTs the file to the presigned URL and the R2 binding sees it", async () => {
    up = await upload("user-1", "sourdough.md", SOURDOUGH, "text/markdown", "doc-sourdough");
    expect(up.etag).toMatch(/^[0-9a-f]{32}$/);

    const head = await env.metacogna_vault.head(up.key);
    expect(head).not.toBeNull();
    expect(head!.size).toBe(new TextEncoder().encode(SOURDOUGH).byteLength);
    expect(head!.etag).toBe(up.etag);
    expect(head!.httpMetadata?.contentType).toBe("text/markdown");

    const object = await env.metacogna_vault.get(up.key);
    expect(await object!.text()).toBe(SOURDOUGH);

    const listed = await env.metacogna_vault.list({ prefix: "user-1/" });
    expect(listed.objects.map((o) => o.key)).toEqual([up.key]);
  });

  it("POST /api/ingest chunks, embeds and stores the document in Vectorize and D1", async () => {
    const chunks = chunk(SOURDOUGH);
    expect(chunks.length).toBeGreaterThanOrEqual(3); // the fixture really is several chunks

    const res = await api("POST", "/api/ingest", { key: up.key, title: "Sourdough" });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ docId: "doc-sourdough", r2Key: up.key, chunks: chunks.length, vectors: chunks.length, etag: up.etag });
    expect(res.body.mutationId).toMatch(/^[0-9a-f-]{36}$/);

    // Vectorize: one vector per chunk, 768 unit-length values, the chunk as metadata
    const ids = chunks.map((_, i) => `doc-sourdough-chunk-${i}`);
    const vectors = await env.VECTOR_INDEX.getByIds([...ids, `doc-sourdough-chunk-${chunks.length}`]);
    expect(vectors.map((v) => v.id).sort()).toEqual([...ids].sort());
    for (const v of vectors) {
      const i = Number(v.id.split("-").pop());
      expect(v.values).toHaveLength(DIMENSIONS);
      expect(norm(v.values)).toBeCloseTo(1, 5);
      expect(v.metadata).toEqual({ docId: "doc-sourdough", title: "Sourdough", content: chunks[i], chunkIndex: i });
    }
    expect((await env.VECTOR_INDEX.describe()).vectorCount).toBe(chunks.length);

    // D1, through the binding: the documents row links the R2 key
    const row = await env.DB.prepare("SELECT * FROM documents WHERE id = ?").bind("doc-sourdough").first<any>();
    expect(row).toMatchObject({ id: "doc-sourdough", title: "Sourdough", content: SOURDOUGH, r2Key: up.key });
    expect(JSON.parse(row.metadata)).toEqual({
      userId: "user-1",
      filename: "sourdough.md",
      contentType: "text/markdown",
      size: new TextEncoder().encode(SOURDOUGH).byteLength,
      etag: up.etag,
      chunks: chunks.length,
    });
    expect(typeof row.createdAt).toBe("number");

    // ... and through tristore's REST API: one store behind every interface
    expect(await d1Rest("SELECT id, r2Key FROM documents")).toEqual([{ id: "doc-sourdough", r2Key: up.key }]);
  });

  it("re-ingesting a shorter version replaces the row and drops the chunks it no longer has", async () => {
    const before = chunk(SOURDOUGH).length;
    const short = "# Sourdough\n\nFeed the starter twice a day.\n";
    await upload("user-1", "sourdough.md", short, "text/markdown", "doc-sourdough");
    const res = await api("POST", "/api/ingest", { key: up.key, title: "Sourdough" });
    expect(res.status).toBe(201);
    expect(res.body.chunks).toBe(1);
    const left = await env.VECTOR_INDEX.getByIds(Array.from({ length: before }, (_, i) => `doc-sourdough-chunk-${i}`));
    expect(left.map((v) => v.id)).toEqual(["doc-sourdough-chunk-0"]);
    expect(left[0].metadata?.content).toBe("# Sourdough Feed the starter twice a day.");
    expect(await count("documents")).toBe(1);

    // restore the long version for the chat tests below
    await upload("user-1", "sourdough.md", SOURDOUGH, "text/markdown", "doc-sourdough");
    expect((await api("POST", "/api/ingest", { key: up.key, title: "Sourdough" })).status).toBe(201);
    expect((await env.VECTOR_INDEX.describe()).vectorCount).toBe(before);
  });
});

describe("chat query flow", () => {
  let sessionId: string;

  it("POST /api/chat retrieves the closest chunks, joins their documents and stores the exchange", async () => {
    await uploadAndIngest("user-2", "tide-pools.txt", TIDE_POOLS, "text/plain", "doc-tides");
    expect(await count("documents")).toBe(2);

    const res = await api("POST", "/api/chat", { query: "How long should the shaped dough proof in the refrigerator?" });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const { context, answer } = res.body;
    sessionId = res.body.sessionId;
    expect(context.length).toBe(3);
    expect(context[0]).toMatchObject({
      docId: "doc-sourdough",
      title: "Sourdough",
      r2Key: "user-1/doc-sourdough/sourdough.md",
      chunkIndex: 1,
    });
    expect(context[0].content).toContain("proof overnight in the refrigerator");
    expect(context[0].score).toBeGreaterThan(0.3);
    // best first, and the unrelated document scores lower than every sourdough chunk
    const scores = context.map((c: any) => c.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    for (const c of context.filter((c: any) => c.docId === "doc-tides")) {
      expect(c.score).toBeLessThan(context[0].score);
      expect(c.r2Key).toBe("user-2/doc-tides/tide-pools.txt");
    }
    expect(answer).toBe(`From "Sourdough": ${context[0].content}`);

    // D1: one session, the user's message and the assistant's answer
    const session = await env.DB.prepare("SELECT * FROM chat_sessions WHERE id = ?").bind(sessionId).first<any>();
    expect(session.title).toBe("How long should the shaped dough proof in the refrigerator?");
    const messages = await env.DB.prepare("SELECT id, role, content, provider, model FROM chat_messages WHERE sessionId = ? ORDER BY createdAt").bind(sessionId).all<any>();
    expect(messages.results).toEqual([
      { id: res.body.messageIds[0], role: "user", content: "How long should the shaped dough proof in the refrigerator?", provider: null, model: null },
      { id: res.body.messageIds[1], role: "assistant", content: answer, provider: PROVIDER, model: MODEL },
    ]);
  });

  it("a docId filter keeps the search inside one document (docId has a metadata index)", async () => {
    const res = await api("POST", "/api/chat", { query: "proofing dough in the refrigerator", docId: "doc-tides", sessionId });
    expect(res.status).toBe(200);
    expect(res.body.sessionId).toBe(sessionId);
    expect(res.body.context.length).toBe(chunk(TIDE_POOLS).length);
    for (const c of res.body.context) expect(c.docId).toBe("doc-tides");
  });

  it("GET /api/chat/:session returns the whole conversation in order", async () => {
    const res = await api("GET", `/api/chat/${sessionId}`);
    expect(res.status).toBe(200);
    expect(res.body.messages.map((m: any) => m.role)).toEqual(["user", "assistant", "user", "assistant"]);
    expect(res.body.session.updatedAt).toBeGreaterThanOrEqual(res.body.session.createdAt);
    expect(await count("chat_messages")).toBe(4);
    expect(await count("chat_sessions")).toBe(1);
  });

  it("DELETE /api/documents/:id removes the vectors, the R2 object and the row", async () => {
    const n = chunk(TIDE_POOLS).length;
    const res = await api("DELETE", "/api/documents/doc-tides");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ docId: "doc-tides", deletedVectors: n, deletedObject: "user-2/doc-tides/tide-pools.txt" });
    expect(await env.VECTOR_INDEX.getByIds(["doc-tides-chunk-0"])).toEqual([]);
    expect(await env.metacogna_vault.head("user-2/doc-tides/tide-pools.txt")).toBeNull();
    expect(await count("documents")).toBe(1);
    const after = await api("POST", "/api/chat", { query: "sea anemones", docId: "doc-tides" });
    expect(after.body.context).toEqual([]);
    expect(after.body.answer).toBe("I found nothing about that in your documents.");
  });
});
