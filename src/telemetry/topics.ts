// Every MQTT topic the agent uses, derived from one prefix so that fleets can re-root them
// (default `edgefit/<deviceId>/`). The dashboard imports the same builder.
import { EdgefitError } from '../errors.js';

export const VERBS = ['ping', 'fit', 'set-budget', 'rollback', 'deploy', 'get-frontier'] as const;
export type Verb = (typeof VERBS)[number];

export function isVerb(s: string): s is Verb {
  return (VERBS as readonly string[]).includes(s);
}

export interface Topics {
  prefix: string;
  status: string;
  profile: string;
  metrics: string;
  events: string;
  /** Subscription filter covering every request verb (and unknown ones, to answer them). */
  requestFilter: string;
  request(verb: string): string;
  response(verb: string): string;
  /** The verb of a request topic, or undefined when the topic is not one of ours. */
  verbOf(topic: string): string | undefined;
}

const DEVICE_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;

export function validDeviceId(id: string): boolean {
  return DEVICE_ID_RE.test(id);
}

export function defaultPrefix(deviceId: string): string {
  return `edgefit/${deviceId}/`;
}

export function topicsFor(deviceId: string, prefix?: string): Topics {
  if (!validDeviceId(deviceId)) {
    throw new EdgefitError('CONFIG', `device id '${deviceId}' must be 1-64 characters of A-Z a-z 0-9 _ . -`);
  }
  let p = prefix ?? defaultPrefix(deviceId);
  p = p.replaceAll('{deviceId}', deviceId);
  if (!p.endsWith('/')) p += '/';
  // Wildcards or NUL inside the prefix would let one device listen to the fleet's commands.
  // eslint-disable-next-line no-control-regex -- NUL is exactly what this check must reject
  if (/[+#\u0000]/.test(p)) throw new EdgefitError('CONFIG', `topic prefix '${p}' must not contain + # or NUL`);
  const req = `${p}request/`;
  return {
    prefix: p,
    status: `${p}status`,
    profile: `${p}profile`,
    metrics: `${p}metrics`,
    events: `${p}events`,
    requestFilter: `${req}+`,
    request: (verb) => `${req}${verb}`,
    response: (verb) => `${p}response/${verb}`,
    verbOf: (topic) => {
      if (!topic.startsWith(req)) return undefined;
      const v = topic.slice(req.length);
      return v.length > 0 && !v.includes('/') ? v : undefined;
    },
  };
}
