// Headless Debian Chromium for the dashboard's browser tests, benchmark and screenshots. The
// background-networking flags matter: without them Chromium keeps dialling out, and this box's
// closed network refuses each attempt.
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
