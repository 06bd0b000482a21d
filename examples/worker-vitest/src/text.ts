// Text extraction and chunking for the ingest flow.

/** Largest chunk, in words. Paragraphs are packed together up to this size. */
export const CHUNK_WORDS = 40;

/** Content types the ingest flow reads, by file extension when the object has none. */
const BY_EXTENSION: Record<string, string> = {
  txt: "text/plain",
  md: "text/markdown",
  markdown: "text/markdown",
  html: "text/html",
  htm: "text/html",
  json: "application/json",
};

export class UnsupportedType extends Error {
  constructor(readonly contentType: string) {
    super(`cannot extract text from ${contentType}`);
  }
}

export function contentTypeOf(key: string, stored: string | undefined): string {
  if (stored && stored !== "application/octet-stream") return stored.split(";")[0].trim().toLowerCase();
  const ext = key.split(".").pop()?.toLowerCase() ?? "";
  return BY_EXTENSION[ext] ?? stored ?? "application/octet-stream";
}

/** The plain text of a stored document. Throws `UnsupportedType` for binary formats. */
export function extractText(body: string, contentType: string): string {
  switch (contentType) {
    case "text/plain":
    case "text/markdown":
      return body;
    case "text/html":
      return body
        .replace(/<(script|style)\b[\s\S]*?<\/\1>/gi, " ")
        .replace(/<\/(p|div|h[1-6]|li|br)\s*>|<br\s*\/?>/gi, "\n\n")
        .replace(/<[^>]*>/g, " ")
        .replace(/&nbsp;/g, " ")
        .replace(/&lt;/g, "<")
        .replace(/&gt;/g, ">")
        .replace(/&quot;/g, '"')
        .replace(/&amp;/g, "&");
    case "application/json":
      return jsonStrings(JSON.parse(body)).join("\n\n");
    default:
      throw new UnsupportedType(contentType);
  }
}

function jsonStrings(v: unknown): string[] {
  if (typeof v === "string") return [v];
  if (Array.isArray(v)) return v.flatMap(jsonStrings);
  if (v && typeof v === "object") return Object.values(v).flatMap(jsonStrings);
  return [];
}

/**
 * Paragraphs (blank-line separated, whitespace collapsed) packed into chunks of at most
 * `CHUNK_WORDS` words, a new chunk at each Markdown heading; a longer paragraph is cut at
 * word boundaries.
 */
export function chunk(text: string, maxWords = CHUNK_WORDS): string[] {
  const chunks: string[] = [];
  let current: string[] = [];
  const flush = () => {
    if (current.length) chunks.push(current.join(" "));
    current = [];
  };
  for (const paragraph of text.split(/\n\s*\n/)) {
    const words = paragraph.split(/\s+/).filter(Boolean);
    if (words.length === 0) continue;
    // a Markdown heading starts a new chunk, so that it stays with its section
    if (words[0].startsWith("#") || current.length + words.length > maxWords) flush();
    for (let i = 0; i < words.length; i += maxWords) {
      const piece = words.slice(i, i + maxWords);
      if (piece.length === maxWords) {
        flush();
        chunks.push(piece.join(" "));
      } else {
        current.push(...piece);
      }
    }
  }
  flush();
  return chunks;
}
