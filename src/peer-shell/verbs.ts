import { loadConfig } from '../config.js';
import type { PeerVerb } from '../domain/peer-command.js';
import { JoinService, readStdin } from '../services/join/join-service.js';

/** Runs one membership verb with this node's config; the answer is JSON on stdout. */
export async function runVerb(verb: Exclude<PeerVerb, { kind: 'none' } | { kind: 'refused' }>): Promise<string> {
  const service = JoinService.open(loadConfig());
  try {
    switch (verb.kind) {
      case 'join':
        return await service.handleJoin(verb.inviteId, await readStdin());
      case 'introduce':
        return service.handleIntroduce(await readStdin());
      case 'forget':
        return service.handleForget(verb.name);
    }
  } finally {
    service.close();
  }
}
