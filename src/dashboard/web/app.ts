/// <reference lib="dom" />
// Browser entry: hash router (#/ fleet, #/d/<id> device) and the one live SSE connection.
import type { StreamMessage } from '../model.js';
import { FleetView } from './fleet-view.js';
import { DeviceView } from './device-view.js';
import { $ } from './util.js';

interface View {
  onMessage(m: StreamMessage): void;
  destroy(): void;
}

let view: View | null = null;
let source: EventSource | null = null;
let brokerUp = true;

function showConn(state: 'connecting' | 'live' | 'down'): void {
  const conn = $('#conn');
  // the page may be live while the dashboard itself has lost the broker: say so
  const s = state === 'live' && !brokerUp ? 'down' : state;
  conn.dataset.state = s;
  conn.textContent =
    state === 'connecting'
      ? 'connecting…'
      : state === 'down'
        ? 'reconnecting…'
        : brokerUp
          ? 'live'
          : 'live · broker unreachable, device states may be stale';
}

function connect(url: string): void {
  source?.close();
  showConn('connecting');
  const es = new EventSource(url);
  source = es;
  es.onopen = () => showConn('live');
  es.onerror = () => showConn('down');
  es.onmessage = (e: MessageEvent<string>) => {
    let m: StreamMessage;
    try {
      m = JSON.parse(e.data) as StreamMessage;
    } catch {
      return;
    }
    if (m.kind === 'link') {
      brokerUp = m.mqtt;
      showConn('live');
      return;
    }
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
