import { describeError } from '../../errors.js';

const WHERE: Record<string, string> = {
  disks: 'while preparing its disks there',
  copy: 'while copying',
  define: 'while moving its definition',
  verify: 'while verifying the result',
  cleanup: 'while cleaning up',
};

/** One sentence: which step failed, and what the admin can do about it. */
export function failureSentence(e: unknown, step: string, vm: string, to: string): string {
  const own = describeError(e);
  const text = `${own} ${(e as { detail?: string })?.detail ?? ''}`;
  let hint = '';
  if (/no data reached|within its budget/i.test(own)) hint = ` ${capitalize(own)}`;
  else if (/Connection refused|No route to host|Connection timed out|Network is unreachable|connection reset|Broken pipe|End of file while reading data/i.test(text)) hint = ` The connection to ${to} broke; check the network between the nodes.`;
  else if (/No space left|ran out of disk space/i.test(text)) hint = ` ${to} ran out of disk space; free some there.`;
  else if (/host key/i.test(text)) hint = ` ${to}'s SSH host key did not match the pinned one.`;
  else if (/could not be verified/i.test(own)) hint = ` ${capitalize(own)}.`;
  return `Migration of ${vm} to ${to} failed ${WHERE[step] ?? ''}.${hint}`;
}

function capitalize(s: string): string {
  const t = s.trim().replace(/\.$/, '');
  return `${t.charAt(0).toUpperCase()}${t.slice(1)}.`;
}
