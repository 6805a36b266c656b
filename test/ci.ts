// Suites that need something a machine may lack (the WebAssembly kernels, Chromium) skip with a
// warning on a developer's machine and fail under CI (the CI environment variable set, as CI
// runners and .ci/run do), so that a green CI always means they ran.

/** CI is set and is not "false" or "0" */
export const IN_CI = !!process.env.CI && !["false", "0"].includes(process.env.CI.toLowerCase());

/**
 * Whether a suite that needs `what` can run: true when it is available; otherwise, under CI,
 * throws (the test file fails, naming what is missing and why), and elsewhere warns and returns
 * false (the caller skips).
 */
export function availableOrFailInCI(what: string, available: boolean, why: () => string): boolean {
  if (available) return true;
  const message = `${what} unavailable: ${why()}`;
  if (IN_CI) throw new Error(`${message}. CI must run these tests, so this fails instead of skipping`);
  console.warn(`${message}; skipped here (under CI, with CI set, this fails)`);
  return false;
}
