// What every computing command does first: start the tfjs backend (--backend) and choose the
// decoder and our tfjs kernels (--kernels), saying which on the log.
import { BACKENDS, describeBackend, selectBackend, type BackendInfo, type BackendName } from "../engine/backend.js";
import { KERNELS, selectKernels } from "../model/generate.js";
import type { FlagSpec, ParsedArgs } from "./args.js";

export const COMPUTE_FLAGS: FlagSpec = { backend: "string", kernels: "string" };
export const COMPUTE_USAGE = `[--backend ${BACKENDS.join("|")}] [--kernels ${KERNELS.join("|")}]`;

export async function setupCompute(
  flags: ParsedArgs["flags"],
  log: (line: string) => void = console.log,
): Promise<{ backend: BackendInfo; kernels: ReturnType<typeof selectKernels> }> {
  const backend = await selectBackend(((flags.backend as string) ?? "auto") as BackendName);
  log(describeBackend(backend));
  const kernels = selectKernels((flags.kernels as string) ?? "auto");
  log(kernels.message);
  return { backend, kernels };
}
