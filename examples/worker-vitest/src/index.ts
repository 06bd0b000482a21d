// Metacogna's storage flows (its document upload and chat query flows) as one Worker:
//
//   POST /api/r2/upload-url   a presigned S3 PUT URL for `{userId}/{docId}/{filename}` in R2
//   POST /api/ingest          R2 object -> text -> chunks -> embeddings -> Vectorize + D1 row
//   POST /api/chat            embed the query -> Vectorize top-k -> D1 documents -> chat messages
//   GET  /api/chat/:session   a session and its messages
//   DELETE /api/documents/:id the document's vectors, R2 object and D1 row
//
// It only talks to its bindings (env.DB, env.VECTOR_INDEX, env.metacogna_vault) and signs
// URLs for R2's S3 endpoint: the same code runs on Cloudflare and, in the tests, against
// tristore.
import { AwsClient } from "aws4fetch";
import { embed } from "./embed";
import { answer as llm, MODEL, PROVIDER } from "./llm";
import { chunk, contentTypeOf, extractText, UnsupportedType } from "./text";

export interface Env {
  DB: D1Database;
  VECTOR_INDEX: VectorizeIndex;
  metacogna_vault: R2Bucket;
  /** R2's S3 API, path style: `https://<ACCOUNT_ID>.r2.cloudflarestorage.com`. */
  S3_ENDPOINT: string;
  /** The bucket behind `metacogna_vault`, as the S3 API names it. */
  R2_BUCKET_NAME: string;
  S3_ACCESS_KEY_ID: string;
  S3_SECRET_ACCESS_KEY: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const json = (body: unknown, status = 200) => Response.json(body, { status });

async function body<T>(request: Request): Promise<T> {
  try {
    return (await request.json()) as T;
  } catch {
    throw new HttpError(400, "the request body must be JSON");
  }
}

function required(value: unknown, name: string): string {
  if (typeof value !== "string" || value.trim() === "") throw new HttpError(400, `${name} is required`);
  return value;
}

// ---------------------------------------------------------------------------------------
// POST /api/r2/upload-url

interface UploadUrlRequest {
  userId: string;
  filename: string;
  docId?: string;
  /** Seconds the URL stays valid (1..604800, default 3600). */
  expiresIn?: number;
}

async function uploadUrl(request: Request, env: Env): Promise<Response> {
  const req = await body<UploadUrlRequest>(request);
  const userId = required(req.userId, "userId");
  const filename = required(req.filename, "filename");
  if (/[\/\\]/.test(userId) || /[\/\\]/.test(filename)) throw new HttpError(400, "userId and filename cannot contain slashes");
  const docId = req.docId ?? `doc-${crypto.randomUUID()}`;
  const expiresIn = req.expiresIn ?? 3600;
  if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > 604800) throw new HttpError(400, "expiresIn must be 1..604800 seconds");
  const key = `${userId}/${docId}/${filename}`;

  const s3 = new AwsClient({
    accessKeyId: env.S3_ACCESS_KEY_ID,
    secretAccessKey: env.S3_SECRET_ACCESS_KEY,
    service: "s3",
    region: "auto",
  });
  const url = new URL(`${env.S3_ENDPOINT.replace(/\/$/, "")}/${env.R2_BUCKET_NAME}/${key.split("/").map(encodeURIComponent).join("/")}`);
  url.searchParams.set("X-Amz-Expires", String(expiresIn));
  const signed = await s3.sign(new Request(url, { method: "PUT" }), { aws: { signQuery: true } });
  return json({ uploadUrl: signed.url, method: "PUT", key, docId, expiresIn });
}

// ---------------------------------------------------------------------------------------
// POST /api/ingest

interface IngestRequest {
  key: string;
  docId?: string;
  title?: string;
}

interface DocumentMetadata {
  userId: string | null;
  filename: string;
  contentType: string;
  size: number;
  etag: string;
  chunks: number;
}

const chunkId = (docId: string, i: number) => `${docId}-chunk-${i}`;

async function ingest(request: Request, env: Env): Promise<Response> {
  const req = await body<IngestRequest>(request);
  const key = required(req.key, "key");
  const parts = key.split("/");
  const docId = req.docId ?? (parts.length === 3 ? parts[1] : undefined);
  if (!docId) throw new HttpError(400, "docId is required when the key is not {userId}/{docId}/{filename}");
  const filename = parts[parts.length - 1];

  const object = await env.metacogna_vault.get(key);
  if (object === null) throw new HttpError(404, "no object at this key: upload it first", { key });
  const contentType = contentTypeOf(key, object.httpMetadata?.contentType);
  let text: string;
  try {
    text = extractText(await object.text(), contentType);
  } catch (e) {
    if (e instanceof UnsupportedType) throw new HttpError(415, e.message, { key, contentType });
    throw new HttpError(422, `cannot read ${key} as ${contentType}: ${(e as Error).message}`);
  }
  const chunks = chunk(text);
  if (chunks.length === 0) throw new HttpError(422, "the document has no text", { key });
  const title = req.title ?? filename;

  const vectors: VectorizeVector[] = [];
  chunks.forEach((content, chunkIndex) => {
    const values = embed(content);
    if (values) vectors.push({ id: chunkId(docId, chunkIndex), values, metadata: { docId, title, content, chunkIndex } });
  });
  if (vectors.length === 0) throw new HttpError(422, "the document has no words to embed", { key });

  // Re-ingesting a shorter version: drop the chunks it no longer has.
  const previous = await env.DB.prepare("SELECT metadata FROM documents WHERE id = ?").bind(docId).first<{ metadata: string }>();
  const previousChunks = previous ? (JSON.parse(previous.metadata) as DocumentMetadata).chunks : 0;
  const stale = Array.from({ length: Math.max(0, previousChunks - chunks.length) }, (_, i) => chunkId(docId, chunks.length + i));

  // The binding takes at most 1,000 vectors per call.
  let mutationId = "";
  for (let i = 0; i < vectors.length; i += 1000) {
    mutationId = (await env.VECTOR_INDEX.upsert(vectors.slice(i, i + 1000))).mutationId;
  }
  if (stale.length) await env.VECTOR_INDEX.deleteByIds(stale);

  const metadata: DocumentMetadata = {
    userId: parts.length === 3 ? parts[0] : null,
    filename,
    contentType,
    size: object.size,
    etag: object.etag,
    chunks: chunks.length,
  };
  await env.DB.prepare(
    `INSERT INTO documents (id, title, content, metadata, r2Key, createdAt) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT(id) DO UPDATE SET title = ?2, content = ?3, metadata = ?4, r2Key = ?5`,
  )
    .bind(docId, title, text, JSON.stringify(metadata), key, Date.now())
    .run();

  return json({ docId, title, r2Key: key, chunks: chunks.length, vectors: vectors.length, mutationId, etag: object.etag, size: object.size }, 201);
}

// ---------------------------------------------------------------------------------------
// POST /api/chat

interface ChatRequest {
  query: string;
  sessionId?: string;
  /** Restrict retrieval to one document (a Vectorize metadata filter on `docId`). */
  docId?: string;
  topK?: number;
}

interface DocumentRow {
  id: string;
  title: string;
  r2Key: string | null;
}

async function chat(request: Request, env: Env): Promise<Response> {
  const req = await body<ChatRequest>(request);
  const query = required(req.query, "query");
  const topK = req.topK ?? 3;
  const vector = embed(query);
  if (vector === null) throw new HttpError(400, "the query has no words to search for");

  const now = Date.now();
  let sessionId = req.sessionId;
  if (sessionId !== undefined) {
    const known = await env.DB.prepare("SELECT id FROM chat_sessions WHERE id = ?").bind(sessionId).first();
    if (known === null) throw new HttpError(404, "no such chat session", { sessionId });
  }

  const result = await env.VECTOR_INDEX.query(vector, {
    topK,
    returnMetadata: "all",
    ...(req.docId !== undefined ? { filter: { docId: req.docId } } : {}),
  });
  const docIds = [...new Set(result.matches.map((m) => String(m.metadata?.docId)))];
  const documents = new Map<string, DocumentRow>();
  if (docIds.length) {
    const rows = await env.DB.prepare(`SELECT id, title, r2Key FROM documents WHERE id IN (${docIds.map(() => "?").join(", ")})`)
      .bind(...docIds)
      .all<DocumentRow>();
    for (const row of rows.results) documents.set(row.id, row);
  }
  const context = result.matches.map((m) => {
    const doc = documents.get(String(m.metadata?.docId));
    return {
      id: m.id,
      score: m.score,
      docId: m.metadata?.docId,
      chunkIndex: m.metadata?.chunkIndex,
      content: m.metadata?.content,
      title: doc?.title ?? m.metadata?.title,
      r2Key: doc?.r2Key ?? null,
    };
  });

  const answer = llm(context);

  const userMessageId = crypto.randomUUID();
  const assistantMessageId = crypto.randomUUID();
  const statements: D1PreparedStatement[] = [];
  if (sessionId === undefined) {
    sessionId = crypto.randomUUID();
    statements.push(
      env.DB.prepare("INSERT INTO chat_sessions (id, title, createdAt, updatedAt) VALUES (?, ?, ?, ?)").bind(sessionId, query.slice(0, 80), now, now),
    );
  } else {
    statements.push(env.DB.prepare("UPDATE chat_sessions SET updatedAt = ? WHERE id = ?").bind(now, sessionId));
  }
  const insertMessage = env.DB.prepare(
    "INSERT INTO chat_messages (id, sessionId, role, content, provider, model, createdAt) VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  statements.push(
    insertMessage.bind(userMessageId, sessionId, "user", query, null, null, now),
    insertMessage.bind(assistantMessageId, sessionId, "assistant", answer, PROVIDER, MODEL, now + 1),
  );
  await env.DB.batch(statements);

  return json({ sessionId, answer, context, messageIds: [userMessageId, assistantMessageId] });
}

async function history(sessionId: string, env: Env): Promise<Response> {
  const [session, messages] = await env.DB.batch([
    env.DB.prepare("SELECT * FROM chat_sessions WHERE id = ?").bind(sessionId),
    env.DB.prepare("SELECT id, role, content, provider, model, createdAt FROM chat_messages WHERE sessionId = ? ORDER BY createdAt, rowid").bind(sessionId),
  ]);
  if (session.results.length === 0) throw new HttpError(404, "no such chat session", { sessionId });
  return json({ session: session.results[0], messages: messages.results });
}

// ---------------------------------------------------------------------------------------
// DELETE /api/documents/:id

async function deleteDocument(docId: string, env: Env): Promise<Response> {
  const row = await env.DB.prepare("SELECT metadata, r2Key FROM documents WHERE id = ?").bind(docId).first<{ metadata: string; r2Key: string | null }>();
  if (row === null) throw new HttpError(404, "no such document", { docId });
  const { chunks } = JSON.parse(row.metadata) as DocumentMetadata;
  const ids = Array.from({ length: chunks }, (_, i) => chunkId(docId, i));
  if (ids.length) await env.VECTOR_INDEX.deleteByIds(ids);
  if (row.r2Key) await env.metacogna_vault.delete(row.r2Key);
  await env.DB.prepare("DELETE FROM documents WHERE id = ?").bind(docId).run();
  return json({ docId, deletedVectors: ids.length, deletedObject: row.r2Key });
}

// ---------------------------------------------------------------------------------------

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const { pathname } = new URL(request.url);
    try {
      if (request.method === "POST" && pathname === "/api/r2/upload-url") return await uploadUrl(request, env);
      if (request.method === "POST" && pathname === "/api/ingest") return await ingest(request, env);
      if (request.method === "POST" && pathname === "/api/chat") return await chat(request, env);
      let m = pathname.match(/^\/api\/chat\/([^/]+)$/);
      if (request.method === "GET" && m) return await history(decodeURIComponent(m[1]), env);
      m = pathname.match(/^\/api\/documents\/([^/]+)$/);
      if (request.method === "DELETE" && m) return await deleteDocument(decodeURIComponent(m[1]), env);
      return json({ error: "not found" }, 404);
    } catch (e) {
      if (e instanceof HttpError) return json({ error: e.message, ...e.extra }, e.status);
      // Binding errors (D1_ERROR, VECTOR_*_ERROR, R2 errors) end up here.
      return json({ error: String((e as Error).message ?? e) }, 500);
    }
  },
} satisfies ExportedHandler<Env>;
