// The upload -> ingest -> chat flow against a running Worker, as its frontend drives it:
//
//   tristore serve --config wrangler.jsonc &
//   npx wrangler dev --env offline &
//   node scripts/smoke.mjs http://127.0.0.1:8787
//
// Leaves document "doc-smoke" (user "smoke") behind; prints "OK" last when every step worked.
import assert from "node:assert/strict";

const base = (process.argv[2] ?? "http://127.0.0.1:8787").replace(/\/$/, "");
const NOTE = `# Greenhouse notes

Water the tomato seedlings every morning and open the roof vents once the greenhouse passes twenty five degrees.

Basil wilts in cold draughts, so keep it on the warm bench next to the heater.
`;

async function call(method, path, body) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    throw new Error(`${method} ${path}: ${res.status} ${text}`);
  }
}

const signed = await call("POST", "/api/r2/upload-url", { userId: "smoke", filename: "greenhouse.md", docId: "doc-smoke" });
assert.equal(signed.status, 200, JSON.stringify(signed.body));
console.log("upload url:", signed.body.uploadUrl.replace(/X-Amz-Signature=\w+/, "X-Amz-Signature=…"));

const put = await fetch(signed.body.uploadUrl, { method: "PUT", body: NOTE, headers: { "content-type": "text/markdown" } });
assert.equal(put.status, 200, await put.text());

const ingested = await call("POST", "/api/ingest", { key: signed.body.key, title: "Greenhouse notes" });
assert.equal(ingested.status, 201, JSON.stringify(ingested.body));
assert.equal(ingested.body.docId, "doc-smoke");
console.log("ingested:", JSON.stringify(ingested.body));

const chat = await call("POST", "/api/chat", { query: "when should I open the greenhouse vents?" });
assert.equal(chat.status, 200, JSON.stringify(chat.body));
assert.equal(chat.body.context[0].docId, "doc-smoke");
assert.equal(chat.body.context[0].r2Key, "smoke/doc-smoke/greenhouse.md");
assert.match(chat.body.answer, /open the roof vents/);
console.log("answer:", chat.body.answer);

const history = await call("GET", `/api/chat/${chat.body.sessionId}`);
assert.equal(history.status, 200);
assert.deepEqual(history.body.messages.map((m) => m.role), ["user", "assistant"]);

const missing = await call("POST", "/api/ingest", { key: "smoke/doc-nothing/nothing.md" });
assert.equal(missing.status, 404);

console.log("OK");
