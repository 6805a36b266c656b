// Balanced braces in LaTeX-like text (`\boxed{\frac{1}{2}}`), shared by the verifier and the dataset
// loaders. A backslash escapes the next character, so `\{` and `\}` do not count.

/** Content between the `{` at `open` and its balanced closing brace, or null if it never closes. */
export function balancedGroup(text: string, open: number): string | null {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return text.slice(open + 1, i);
  }
  return null;
}
