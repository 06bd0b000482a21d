// Runs before each test file: every file starts from wrangler.jsonc's resources, freshly
// provisioned and empty (D1 re-migrated, the index recreated with its metadata indexes,
// the bucket emptied).
import { beforeAll, inject } from "vitest";

beforeAll(async () => {
  const res = await fetch(inject("tristore").reset, { method: "POST" });
  if (!res.ok) throw new Error(`tristore reset: ${res.status} ${await res.text()}`);
});
