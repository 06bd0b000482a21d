import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => {
      const tristore = inject("tristore"); // started by global-setup.ts
      // One URL for every binding: tristore routes each call by its binding name (the
      // MF-Binding header), resolved through the wrangler.jsonc it was started with.
      // It must be a URL object: Miniflare reads `.href`, and a string silently leaves
      // the binding unconfigured ("Binding X needs to be run remotely").
      const remote = new URL(tristore.remoteBindings);
      return {
        // the production configuration, unchanged
        wrangler: { configPath: "./wrangler.jsonc" },
        // never open a Cloudflare session, although VECTOR_INDEX says remote: true
        remoteBindings: false,
        miniflare: {
          // the same binding names, answered by tristore instead of Miniflare's local stores
          d1Databases: { DB: { id: "metacogna", remoteProxyConnectionString: remote } },
          vectorize: { VECTOR_INDEX: { index_name: "metacogna-index", remoteProxyConnectionString: remote } },
          r2Buckets: { metacogna_vault: { id: "metacogna-vault", remoteProxyConnectionString: remote } },
          // presigned uploads go to tristore's S3 API, signed with its credentials
          bindings: {
            S3_ENDPOINT: tristore.s3,
            S3_ACCESS_KEY_ID: process.env.TRISTORE_S3_ACCESS_KEY_ID ?? "tristore",
            S3_SECRET_ACCESS_KEY: process.env.TRISTORE_S3_SECRET_ACCESS_KEY ?? "tristore-secret",
          },
        },
      };
    }),
  ],
  test: {
    globalSetup: ["./global-setup.ts"],
    // empties tristore before each test file (Miniflare's per-file storage reset does
    // not reach storage that lives in tristore)
    setupFiles: ["./test/reset.ts"],
    // one tristore serves every file, so files run one after another
    fileParallelism: false,
  },
});
