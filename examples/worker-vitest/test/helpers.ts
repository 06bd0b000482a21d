import { env, exports } from "cloudflare:workers";
import { expect, inject } from "vitest";

/** A call to the Worker's own fetch handler, as the frontend makes it. */
export async function api<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await exports.default.fetch(
    new Request(`https://metacogna.example${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    }),
  );
  const text = await res.text();
  let parsed: T;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${method} ${path}: ${res.status}, not JSON: ${text}`);
  }
  return { status: res.status, body: parsed };
}

export interface Uploaded {
  key: string;
  docId: string;
  uploadUrl: string;
  /** The S3 API's ETag for the PUT, without quotes. */
  etag: string;
}

/**
 * The frontend's half of the upload flow: ask the Worker for a presigned URL, then PUT the
 * file to R2's S3 API directly (here tristore's).
 */
export async function upload(userId: string, filename: string, content: string, contentType: string, docId?: string): Promise<Uploaded> {
  const signed = await api("POST", "/api/r2/upload-url", { userId, filename, docId });
  expect(signed.status, JSON.stringify(signed.body)).toBe(200);
  const put = await fetch(signed.body.uploadUrl, { method: "PUT", body: content, headers: { "content-type": contentType } });
  expect(put.status, await put.clone().text()).toBe(200);
  const etag = (put.headers.get("etag") ?? "").replaceAll('"', "");
  return { key: signed.body.key, docId: signed.body.docId, uploadUrl: signed.body.uploadUrl, etag };
}

/** upload + POST /api/ingest, asserting both succeed. */
export async function uploadAndIngest(userId: string, filename: string, content: string, contentType = "text/markdown", docId?: string) {
  const up = await upload(userId, filename, content, contentType, docId);
  const ingested = await api("POST", "/api/ingest", { key: up.key, title: filename.replace(/\.\w+$/, "") });
  expect(ingested.status, JSON.stringify(ingested.body)).toBe(201);
  return { ...up, ingest: ingested.body };
}

/** One row count through the Worker's own D1 binding. */
export async function count(table: string): Promise<number> {
  const row = await env.DB.prepare(`SELECT count(*) AS n FROM ${table}`).first<{ n: number }>();
  return row!.n;
}

/** tristore's Cloudflare REST API: the same store, seen from outside the Worker. */
export async function rest<T = any>(path: string, init?: RequestInit): Promise<T> {
  const res = await fetch(`${inject("tristore").api}/accounts/any${path}`, init);
  const body = (await res.json()) as { success: boolean; result: T; errors: unknown };
  if (!res.ok || !body.success) throw new Error(`REST ${path}: ${res.status} ${JSON.stringify(body.errors)}`);
  return body.result;
}

/** A query against the `metacogna` D1 database through the REST API. */
export async function d1Rest<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
  const dbs = await rest<{ uuid: string; name: string }[]>("/d1/database?name=metacogna");
  const db = dbs.find((d) => d.name === "metacogna");
  if (!db) throw new Error(`no metacogna database over REST: ${JSON.stringify(dbs)}`);
  const result = await rest<{ results: T[] }[]>(`/d1/database/${db.uuid}/query`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sql, params }),
  });
  return result[0].results;
}

export function norm(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i] * values[i];
  return Math.sqrt(s);
}
