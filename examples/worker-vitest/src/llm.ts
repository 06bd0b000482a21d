// The LLM call of the chat flow, replaced by a deterministic stand-in that quotes its best
// source, so that tests can assert on the answer. (Only handlers may be exported from the
// Worker's main module: workerd rejects any other export as an entrypoint.)

export const PROVIDER = "test";
export const MODEL = "context-echo";

export interface Source {
  title: unknown;
  content: unknown;
}

export function answer(context: Source[]): string {
  return context.length ? `From "${context[0].title}": ${context[0].content}` : "I found nothing about that in your documents.";
}
