/**
 * SSH "exec" hands one string to the remote user's shell, so argv has to be turned
 * into a string there. Each element becomes one single-quoted word: inside single
 * quotes a POSIX shell interprets nothing, and a quote itself is closed, escaped, reopened.
 */
export function quoteArgv(file: string, args: readonly string[]): string {
  return [file, ...args].map(quoteWord).join(' ');
}

export function quoteWord(word: string): string {
  if (word.includes('\0')) throw new Error('a NUL byte cannot be passed to a remote command');
  return `'${word.replace(/'/g, `'\\''`)}'`;
}
