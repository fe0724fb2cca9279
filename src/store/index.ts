export * from './store.js';
export { MIGRATIONS } from './migrations.js';
export { diagnoseStore, openStore, type Recovery } from './recover.js';
