// Removes build output folders given as arguments (relative to the package root), so a
// build never ships files left over from an earlier one.
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
for (const dir of process.argv.slice(2)) {
  rmSync(join(root, dir), { recursive: true, force: true });
}
