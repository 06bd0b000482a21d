// Shared by isolation-a.spec.ts and isolation-b.spec.ts: whichever file runs second fails if
// the first one's data survived the reset that test/reset.ts makes before each file.
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { embed } from "../src/embed";
import { api, count, rest, uploadAndIngest } from "./helpers";

export function isolationSuite(me: string) {
  it("starts from empty resources", async () => {
    expect(await count("documents")).toBe(0);
    expect(await count("chat_sessions")).toBe(0);
    expect(await count("chat_messages")).toBe(0);
    expect((await env.VECTOR_INDEX.describe()).vectorCount).toBe(0);
    expect((await env.metacogna_vault.list()).objects).toEqual([]);
  });

  it("the reset kept the schema and the metadata indexes", async () => {
    const indexes = await rest<{ metadataIndexes: { propertyName: string; indexType: string }[] }>(
      "/vectorize/v2/indexes/metacogna-index/metadata_index/list",
    );
    expect([...indexes.metadataIndexes].sort((a, b) => a.propertyName.localeCompare(b.propertyName))).toEqual([
      { propertyName: "chunkIndex", indexType: "number" },
      { propertyName: "docId", indexType: "string" },
    ]);
    // same document id in both files, different text
    await uploadAndIngest(me, "shared.md", `Only ${me} wrote this note.`, "text/markdown", "doc-shared");
    const hits = await env.VECTOR_INDEX.query(embed("note")!, { topK: 5, filter: { docId: "doc-shared" }, returnMetadata: "all" });
    expect(hits.matches.map((m) => m.metadata?.content)).toEqual([`Only ${me} wrote this note.`]);
    const chat = await api("POST", "/api/chat", { query: "who wrote this note", docId: "doc-shared" });
    expect(chat.body.answer).toBe(`From "shared": Only ${me} wrote this note.`);
    expect((await env.metacogna_vault.list()).objects.map((o) => o.key)).toEqual([`${me}/doc-shared/shared.md`]);
  });
}
