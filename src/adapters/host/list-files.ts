import { readdir } from 'node:fs/promises';

/** Regular files (or symlinks to them) directly in `dir` whose names end with one of `extensions`. */
export async function listFiles(dir: string, extensions: readonly string[]): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && extensions.some((x) => e.name.toLowerCase().endsWith(x)))
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}
