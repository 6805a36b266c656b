// Reading a WebAssembly binary's sections (for checks on kernel binaries before they are
// instantiated: matmul.ts hasDataSection, wasmHeap.ts withSharedMemory).

/** Reads an unsigned LEB128 at p: [value, next position]. */
export function leb(bytes: Uint8Array, p: number): [number, number] {
  let v = 0;
  for (let shift = 0; ; shift += 7) {
    if (p >= bytes.length) throw new Error("truncated LEB128");
    const b = bytes[p++];
    v += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [v, p];
  }
}

/** The sections of a binary in order: id and the byte range of the body. Throws if it is not one. */
export function* sections(bytes: Uint8Array): Generator<{ id: number; body: number; end: number }> {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d)
    throw new Error("not a WebAssembly binary");
  let p = 8; // magic + version
  while (p < bytes.length) {
    const id = bytes[p++];
    const [size, body] = leb(bytes, p);
    yield { id, body, end: body + size };
    p = body + size;
  }
}
