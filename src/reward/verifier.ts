// Rule-based verifier (PLACEHOLDER: minimal; to be extended with mathjs equivalence).
export interface RewardResult {
  reward: 0 | 1;
  extracted: string | null;
  parts: { format: 0 | 1; answer: 0 | 1 };
}

export function extractAnswer(response: string): string | null {
  const i = response.lastIndexOf("####");
  if (i < 0) return null;
  return response.slice(i + 4).trim();
}

export function isEquivalent(answer: string, label: string): boolean {
  return answer.trim() === label.trim();
}

export function reward(response: string, label: string): RewardResult {
  const extracted = extractAnswer(response);
  if (extracted === null) return { reward: 0, extracted, parts: { format: 0, answer: 0 } };
  const ok = isEquivalent(extracted, label) ? 1 : 0;
  return { reward: ok, extracted, parts: { format: 1, answer: ok } };
}
