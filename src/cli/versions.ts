// Versions of the packages that decide numerical results, recorded with every output.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

export function packageVersions(): Record<string, string> {
  const out: Record<string, string> = { node: process.version };
  for (const p of [
    "@tensorflow/tfjs",
    "@tensorflow/tfjs-backend-wasm",
    "@huggingface/tokenizers",
    "mathjs",
    "seedrandom",
    "@tensorflow/tfjs-node",
    "@tensorflow/tfjs-node-gpu",
  ]) {
    try {
      out[p] = (require(`${p}/package.json`) as { version: string }).version;
    } catch {
      // optional packages are simply absent
    }
  }
  return out;
}
