import type { VpnConfig } from '../../config-vpn.js';

/**
 * The one command line that starts this node's instance: every path comes from the
 * validated config, never from a request. The lab (scripts/lab/vpn.sh) uses the same
 * argv, so an instance it started is recognised by isOurInstance().
 */
export function buildOpenvpnStartArgs(cfg: VpnConfig): string[] {
  // --config before --daemon: errors in the file are then printed to stderr (and reach
  // the user) instead of going to syslog, which --daemon switches to at once.
  return [
    '--config', cfg.configFile,
    '--daemon', 'kvm-ferry-vpn',
    '--writepid', cfg.pidFile,
    '--status', cfg.statusFile, '1',
    '--status-version', '2',
    ...(cfg.logFile ? ['--log-append', cfg.logFile] : []),
  ];
}

/** Is this /proc/<pid>/cmdline (NUL-separated) an openvpn running exactly our config file? */
export function isOurInstance(cmdline: string, cfg: VpnConfig): boolean {
  const argv = cmdline.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
  if (!argv.length || !/(^|\/)openvpn$/.test(argv[0]!)) return false;
  const i = argv.indexOf('--config');
  return i > 0 && argv[i + 1] === cfg.configFile;
}
