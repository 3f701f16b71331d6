// Puts what a page embeds into dist/: our hand-written widget and the socket.io client
// installed by `npm ci` (pinned in package-lock.json). No bundler needed: the widget is plain JS.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
mkdirSync(dist, { recursive: true });
for (const [from, to] of [
  ["node_modules/socket.io-client/dist/socket.io.min.js", "socket.io.min.js"],
  ["src/widget.js", "widget.js"],
  ["src/widget.css", "widget.css"],
]) {
  copyFileSync(join(here, from), join(dist, to));
}
console.log(`widget built in ${dist}`);
