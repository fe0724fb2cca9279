/// <reference lib="dom" />
// Browser entry: hash router (#/ fleet, #/d/<id> device) and the one live SSE connection.
import type { StreamMessage } from '../model.js';
import { FleetView } from './fleet-view.js';
import { DeviceView } from './device-view.js';
import { $ } from './util.js';

interface View { onMessage(m: StreamMessage): void; destroy(): void }

let view: View | null = null;
let source: EventSource | null = null;

function connect(url: string): void {
  source?.close();
  const conn = $('#conn');
  conn.dataset.state = 'connecting';
  conn.textContent = 'connecting…';
  const es = new EventSource(url);
  source = es;
  es.onopen = () => { conn.dataset.state = 'live'; conn.textContent = 'live'; };
  es.onerror = () => { conn.dataset.state = 'down'; conn.textContent = 'reconnecting…'; };
  es.onmessage = (e: MessageEvent<string>) => {
    let m: StreamMessage;
    try { m = JSON.parse(e.data) as StreamMessage; } catch { return; }
    view?.onMessage(m);
  };
}

function route(): void {
  const main = $('#main');
  view?.destroy();
  view = null;
  const m = /^#\/d\/(.+)$/.exec(location.hash);
  if (m) {
    const id = decodeURIComponent(m[1]!);
    view = new DeviceView(main, id);
    $('#crumb').textContent = `/ ${id}`;
    connect(`/api/stream?device=${encodeURIComponent(id)}`);
  } else {
    view = new FleetView(main);
    $('#crumb').textContent = '';
    connect('/api/stream');
  }
}

window.addEventListener('hashchange', route);
route();
