// A Miniflare external plugin: a Worker's Vectorize, D1 and R2 bindings built from workerd's
// own implementations (as Miniflare builds them for `remote: true`), with their fetcher
// pointed at tristore's remote-bindings route instead of a Cloudflare session.
//
// Miniflare loads it for wrangler's `unsafe.bindings[].dev.plugin`:
//
//   { "name": "DB", "type": "d1", "database_name": "metacogna",
//     "dev": { "plugin": { "package": "tristore-miniflare-plugin", "name": "tristore" },
//              "options": { "url": "http://127.0.0.1:8790" } } }
//
// Miniflare 4 hands an external plugin the unsafe bindings that name it
// (`[{ name, type, plugin, options }]`, `type` without its `unsafe_` prefix, `options` the
// binding's fields merged with `dev.options`). Miniflare 5 hands it the whole worker options;
// the unsafe bindings are in `config.env` as `{ type: "unsafe:<type>", dev: { plugin, options } }`.

import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** The name to put in `dev.plugin.name`. */
export const PLUGIN_NAME = "tristore";

/** The one proxy-client service every binding of this plugin shares (its props say where to). */
const SERVICE = "tristore:remote-bindings";

/** The route tristore answers Miniflare's proxy protocol on. */
export const ROUTE = "/cdn-cgi/tristore/remote-bindings";

/** `tristore serve`'s default REST address. */
export const DEFAULT_URL = "http://127.0.0.1:8790";

/**
 * The `miniflare` this plugin runs inside. The plugin uses its remote-proxy client worker and
 * its `ProxyNodeBinding` class (which Miniflare recognises by identity), so it must be the
 * copy that loaded it: the one a plain import finds when the plugin is installed next to it.
 * A symlinked install (`npm link`, `file:` without `--install-links`) cannot see it from its
 * real path, so fall back to the project's (the working directory's).
 */
async function loadMiniflare() {
  try {
    return await import("miniflare");
  } catch (first) {
    try {
      const require = createRequire(join(process.cwd(), "package.json"));
      return await import(pathToFileURL(require.resolve("miniflare")).href);
    } catch {
      throw new Error(`tristore-miniflare-plugin: cannot import miniflare (install the plugin next to wrangler or miniflare): ${first}`);
    }
  }
}
const { remoteProxyClientWorker, buildRemoteProxyProps, ProxyNodeBinding } = await loadMiniflare();

/** Binding types (as written in `unsafe.bindings[].type`) and what they are to tristore. */
const KINDS = {
  vectorize: "vectorize",
  d1: "d1",
  d1_database: "d1",
  r2_bucket: "r2",
  r2: "r2",
};

/** The production binding field that names the resource, per kind (first one set wins). */
const RESOURCE_FIELDS = {
  vectorize: ["index_name"],
  d1: ["database_name"],
  r2: ["bucket_name"],
};

/**
 * Our bindings, from either interface, as `{ name, type, options }` with `options` the
 * binding's own fields plus `dev.options`.
 */
function ours(opts) {
  if (opts === undefined || opts === null) return [];
  if (Array.isArray(opts)) {
    // Miniflare 4: already filtered to this plugin
    return opts.map((b) => ({ name: b.name, type: b.type, options: b.options ?? {} }));
  }
  // Miniflare 5: every binding of the worker
  return Object.entries(opts.config?.env ?? {})
    .filter(([, b]) => b?.dev?.plugin?.name === PLUGIN_NAME)
    .map(([name, b]) => {
      const { type, dev, ...fields } = b;
      return { name, type, options: { ...fields, ...(dev.options ?? {}) } };
    });
}

/** What one binding is: its kind and the URL its calls go to. */
export function resolveBinding({ name, type, options }) {
  const bare = String(type ?? "").replace(/^unsafe[:_]/, "");
  const kind = Object.hasOwn(KINDS, bare) ? KINDS[bare] : undefined;
  if (kind === undefined) {
    throw new Error(
      `tristore-miniflare-plugin: binding ${name} has type "${type}"; supported: ${Object.keys(KINDS).map((k) => `"${k}"`).join(", ")}`,
    );
  }
  const resource = RESOURCE_FIELDS[kind].map((f) => options[f]).find((v) => typeof v === "string" && v !== "");
  // $TRISTORE_URL overrides the configured url (a test harness starts tristore on a free port)
  const base = String(process.env.TRISTORE_URL || options.url || DEFAULT_URL).replace(/\/+$/, "");
  // With a resource name: one URL per binding. Without: tristore resolves the binding name
  // (the MF-Binding header) through its --config file or its Metacogna defaults.
  const url = new URL(resource === undefined ? `${base}${ROUTE}` : `${base}${ROUTE}/${kind}/${encodeURIComponent(resource)}`);
  const token = process.env.TRISTORE_API_TOKEN || options.token;
  if (token) url.searchParams.set("token", token);
  return { name, kind, resource, url };
}

function workerdBinding({ name, kind, resource, url }) {
  const fetcher = { name: SERVICE, props: buildRemoteProxyProps(url, name) };
  switch (kind) {
    case "vectorize":
      // as Miniflare's vectorize plugin
      return {
        name,
        wrapped: {
          moduleName: "cloudflare-internal:vectorize-api",
          innerBindings: [
            { name: "fetcher", service: fetcher },
            { name: "indexId", text: resource ?? name },
            { name: "indexVersion", text: "v2" },
            { name: "useNdJson", json: true },
          ],
        },
      };
    case "d1":
      // as Miniflare's d1 plugin for a database with a remoteProxyConnectionString
      return {
        name,
        wrapped: {
          moduleName: "cloudflare-internal:d1-api",
          innerBindings: [{ name: "fetcher", service: fetcher }],
        },
      };
    case "r2":
      // as Miniflare's r2 plugin for a bucket with a remoteProxyConnectionString
      return { name, r2Bucket: fetcher };
  }
}

export const plugins = {
  [PLUGIN_NAME]: {
    bindingTypeDescription: "tristore (Vectorize, D1, R2)",
    getBindings(opts) {
      return ours(opts).map((b) => workerdBinding(resolveBinding(b)));
    },
    getNodeBindings(opts) {
      return Object.fromEntries(ours(opts).map(({ name }) => [name, new ProxyNodeBinding()]));
    },
    getServices({ options }) {
      return ours(options).length ? [{ name: SERVICE, worker: remoteProxyClientWorker() }] : [];
    },
  },
};
