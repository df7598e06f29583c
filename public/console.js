// The console page: asks for a one-time ticket, opens noVNC on /console/ws, and says
// in one sentence why the console closed (VM stopped, migrated away, ticket refused).
import RFB from '/static/vendor/novnc/core/rfb.js';

const root = document.getElementById('console');
const node = root.dataset.node;
const vm = root.dataset.vm;
const statusEl = document.getElementById('console-status');
const movedEl = document.getElementById('console-moved');
const screen = document.getElementById('console-screen');
const cad = document.getElementById('console-cad');
const scale = document.getElementById('console-scale');
const reconnect = document.getElementById('console-reconnect');
const alt = document.getElementById('console-alt');
const api = `/api/nodes/${encodeURIComponent(node)}/vms/${encodeURIComponent(vm)}/console`;

let rfb = null;

function say(text, state) {
  statusEl.textContent = text;
  statusEl.dataset.state = state;
  statusEl.className = `alert ${state === 'connected' ? 'alert-ok' : state === 'connecting' ? 'alert-running' : 'alert-error'}`;
}

function showMoved(movedTo) {
  movedEl.replaceChildren();
  movedEl.hidden = !movedTo;
  if (!movedTo) return;
  const a = document.createElement('a');
  a.href = movedTo.consolePath;
  a.textContent = movedTo.node;
  a.id = 'console-moved-link';
  movedEl.append('Open the console on node ', a);
  if (movedTo.peerUrl) {
    const b = document.createElement('a');
    b.href = movedTo.peerUrl;
    b.textContent = 'on its own manager';
    movedEl.append(' (or ', b, ')');
  }
  movedEl.append('.');
}

async function readJson(res) {
  try {
    return await res.json();
  } catch {
    return null;
  }
}

const VNC_CLOSED = 4020;
const VM_GONE = 4010;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * After a disconnect: ask where the VM is now, so "stopped" and "migrated to beta" read
 * differently. When the VNC server itself went away, libvirt may still be finishing a
 * migration's switchover, so ask a few times before settling.
 */
async function explain(fallback, closeCode) {
  say(fallback, 'disconnected');
  try {
    for (let attempt = 0; attempt < (closeCode === VNC_CLOSED ? 4 : 1); attempt++) {
      if (attempt > 0) await sleep(1500);
      const s = await readJson(await fetch(api, { credentials: 'same-origin', cache: 'no-store' }));
      // A reconnect started meanwhile: its own messages win.
      if (!s || rfb) break;
      if (s.available === false) {
        say(s.message, 'disconnected');
        // Nothing to show any more: no black box, no stale address for desktop clients.
        screen.hidden = true;
        if (alt) alt.hidden = true;
      }
      showMoved(s.movedTo);
      if (s.code === VM_GONE) break;
    }
  } catch {
    /* the last sentence stays */
  }
}

async function connect() {
  reconnect.hidden = true;
  showMoved(null);
  say('Connecting…', 'connecting');
  screen.hidden = false;
  let ticket;
  try {
    const res = await fetch(api, { method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' }, body: '{}' });
    ticket = await readJson(res);
    if (!res.ok) {
      reconnect.hidden = false;
      return explain((ticket && ticket.error && ticket.error.message) || `The console could not be opened (HTTP ${res.status}).`);
    }
  } catch {
    reconnect.hidden = false;
    return say('The manager did not answer; check the connection and reconnect.', 'disconnected');
  }
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${ticket.wsPath}`);
  let closed = null;
  ws.addEventListener('close', (ev) => {
    closed = ev;
  });
  rfb = new RFB(screen, ws, { shared: true });
  rfb.scaleViewport = scale.checked;
  rfb.resizeSession = false;
  rfb.addEventListener('connect', () => {
    say(`Connected to ${vm} on node ${node}.`, 'connected');
    cad.disabled = false;
    rfb.focus();
  });
  rfb.addEventListener('credentialsrequired', () => {
    const password = window.prompt(`VNC password of ${vm}:`);
    if (password === null) rfb.disconnect();
    else rfb.sendCredentials({ password });
  });
  rfb.addEventListener('securityfailure', (e) => {
    say(`The VNC server of ${vm} refused the login${e.detail.reason ? `: ${e.detail.reason}` : ''}.`, 'disconnected');
  });
  rfb.addEventListener('disconnect', (e) => {
    rfb = null;
    cad.disabled = true;
    reconnect.hidden = false;
    const reason = closed && closed.reason;
    const text = reason || (e.detail.clean ? 'The console was closed.' : 'The connection to the console was lost; reconnect to try again.');
    void explain(text, closed && closed.code);
  });
}

cad.addEventListener('click', () => rfb && rfb.sendCtrlAltDel());
scale.addEventListener('change', () => {
  if (rfb) rfb.scaleViewport = scale.checked;
});
reconnect.addEventListener('click', () => void connect());

if (root.dataset.available === 'true') void connect();
else reconnect.hidden = false;
