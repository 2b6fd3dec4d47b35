// Bundle size of the SDK as an app would ship it: dist/index.js and its imports bundled
// and minified by esbuild, then gzipped (level 9) with node:zlib. Prints one line for CI.
// Needs `npm run build` first.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const entry = join(root, "dist", "index.js");
if (!existsSync(entry)) {
  console.error("size: no dist/index.js (run `npm run build` first)");
  process.exit(1);
}
const out = await build({
  entryPoints: [entry],
  bundle: true,
  minify: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  write: false,
  logLevel: "warning",
});
const code = out.outputFiles[0].contents;
const gz = gzipSync(code, { level: 9 });
console.log(`bundle size (dist/index.js, esbuild --minify): ${code.length} bytes minified, ${gz.length} bytes gzipped`);
