import { mkdir, open, readFile, rename } from 'node:fs/promises'
import path from 'node:path'
import type { ProcedureNsid } from './methods.js'
import type { JsonObject } from './xrpc.js'

/**
 * Durable records by id. A write must be durable when its promise resolves:
 * the client relies on that before it sends anything.
 */
export interface RecordStore<T> {
  get(id: string): Promise<T | undefined>
  put(id: string, record: T): Promise<void>
  delete(id: string): Promise<void>
  list(): Promise<T[]>
}

/** A write that has not yet had a definitive answer from the server. */
export interface PendingOperation {
  /** The idempotency key, generated once and sent with every attempt. */
  id: string
  nsid: ProcedureNsid
  /** The input in JSON form (`$bytes` for binary), exactly as it is sent. */
  input: JsonObject
  createdAt: string
}

/** A fetched Welcome kept until its successful processing is confirmed. */
export interface StoredWelcome {
  convoId: string
  /** The Welcome, base64 as the server sent it. */
  welcome: string
  storedAt: string
}

/** Where an event subscription stands: the cursor of the last event the app handled. */
export interface StoredCursor {
  /** The subscription's conversation, or `*` for all of the user's. */
  key: string
  cursor: string
  savedAt: string
}

export type PendingStore = RecordStore<PendingOperation>
export type WelcomeStore = RecordStore<StoredWelcome>
export type CursorStore = RecordStore<StoredCursor>

/** Records in memory: lost with the process. For tests and short-lived bots. */
export class MemoryRecordStore<T> implements RecordStore<T> {
  private readonly records = new Map<string, T>()

  async get(id: string): Promise<T | undefined> {
    return this.records.get(id)
  }

  async put(id: string, record: T): Promise<void> {
    this.records.set(id, record)
  }

  async delete(id: string): Promise<void> {
    this.records.delete(id)
  }

  async list(): Promise<T[]> {
    return [...this.records.values()]
  }
}

/**
 * Records in one JSON file, rewritten whole on every change: written to a
 * temporary file, flushed to disk, then renamed over the old one, so a crash
 * leaves either the old or the new file. For one process at a time; writes
 * from concurrent calls are queued and coalesced.
 */
export class JsonFileRecordStore<T> implements RecordStore<T> {
  private loaded: Promise<Map<string, T>> | undefined
  /** Bumped by every change; a write covers every change made before it started. */
  private version = 0
  private writtenVersion = 0
  private writing: Promise<void> = Promise.resolve()

  constructor(readonly file: string) {}

  async get(id: string): Promise<T | undefined> {
    return (await this.records()).get(id)
  }

  async put(id: string, record: T): Promise<void> {
    const records = await this.records()
    records.set(id, record)
    await this.persist()
  }

  async delete(id: string): Promise<void> {
    const records = await this.records()
    if (records.delete(id)) await this.persist()
  }

  async list(): Promise<T[]> {
    return [...(await this.records()).values()]
  }

  private records(): Promise<Map<string, T>> {
    this.loaded ??= readFile(this.file, 'utf8').then(
      (text) => new Map(Object.entries(JSON.parse(text) as Record<string, T>)),
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return new Map<string, T>()
        throw err
      },
    )
    return this.loaded
  }

  private persist(): Promise<void> {
    const wanted = ++this.version
    const write = this.writing.then(async () => {
      // A write queued after ours already saved this change.
      if (this.writtenVersion >= wanted) return
      const version = this.version
      await this.writeFile(JSON.stringify(Object.fromEntries(await this.records())))
      this.writtenVersion = version
    })
    // A failed write fails its callers; later ones still run.
    this.writing = write.catch(() => undefined)
    return write
  }

  private async writeFile(text: string): Promise<void> {
    const temp = `${this.file}.${process.pid}.tmp`
    await mkdir(path.dirname(this.file), { recursive: true })
    const handle = await open(temp, 'w')
    try {
      await handle.writeFile(text)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(temp, this.file)
  }
}

export class MemoryPendingStore extends MemoryRecordStore<PendingOperation> {}
export class FilePendingStore extends JsonFileRecordStore<PendingOperation> {}
export class MemoryWelcomeStore extends MemoryRecordStore<StoredWelcome> {}
export class FileWelcomeStore extends JsonFileRecordStore<StoredWelcome> {}
export class MemoryCursorStore extends MemoryRecordStore<StoredCursor> {}
export class FileCursorStore extends JsonFileRecordStore<StoredCursor> {}
