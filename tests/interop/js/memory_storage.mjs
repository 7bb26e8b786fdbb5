// @walletconnect/keyvaluestorage's IKeyValueStorage, in memory: nothing is written to disk, and every
// Core gets its own (so its own relay key). Shared by the interop peers.
export class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  async getKeys() {
    return [...this.map.keys()];
  }
  async getEntries() {
    return [...this.map.entries()];
  }
  async getItem(key) {
    return this.map.get(key);
  }
  async setItem(key, value) {
    this.map.set(key, value);
  }
  async removeItem(key) {
    this.map.delete(key);
  }
}
