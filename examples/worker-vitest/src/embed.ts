// A deterministic stand-in for Workers AI's `@cf/baai/bge-base-en-v1.5` (768 dimensions):
// hashed bag of words with signed buckets, L2-normalised, so cosine similarity measures
// word overlap. Tests get stable vectors and scores without a model or a network.

export const DIMENSIONS = 768;

/** Lower-cased words of two or more letters or digits. */
export function tokens(text: string): string[] {
  return (text.toLowerCase().match(/[\p{L}\p{N}]{2,}/gu) ?? []).filter((w) => !STOP.has(w));
}

const STOP = new Set(
  "the and for are but not you all any can had her was one our out has his how its may new now see who did get let put say she too use what with this that from they will have been into than them then were".split(
    " ",
  ),
);

/** 32-bit FNV-1a over the UTF-16 code units. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The embedding of `text`, or `null` when it has no words (a zero vector has no direction). */
export function embed(text: string): number[] | null {
  const v = new Array<number>(DIMENSIONS).fill(0);
  const words = tokens(text);
  if (words.length === 0) return null;
  for (const w of words) {
    const h = fnv1a(w);
    v[h % DIMENSIONS] += h & 0x80000000 ? -1 : 1;
  }
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  // Opposite signs in one bucket can cancel out exactly.
  if (norm === 0) return null;
  return v.map((x) => x / norm);
}
