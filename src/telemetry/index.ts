export * from './topics.js';
export * from './payloads.js';
export { checkPayload, checkArgs, formatAjvErrors } from './validate.js';
export * from './signing.js';
export { TelemetryClient, backoffDelay, type MqttSettings } from './client.js';
export { OutboxPublisher, type OutboxRow, type OutboxSource } from './outbox-publisher.js';
export { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.js';
export { mqttTlsOptions, isTlsUrl, type MqttTlsFiles } from './tls.js';
