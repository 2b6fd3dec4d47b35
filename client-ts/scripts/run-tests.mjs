// Runs the compiled test files (build-test/test/*.test.js) with node's test runner and the
// TAP reporter, whose `# pass N` / `# fail N` summary CI reads. Node 20 cannot glob, and
// handing it the folder would also run the harness modules as tests.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "build-test", "test");
const only = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".test.js"))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
  .map((f) => join(dir, f));
const r = spawnSync(
  process.execPath,
  ["--test", "--test-reporter=tap", "--test-concurrency=1", ...files],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
