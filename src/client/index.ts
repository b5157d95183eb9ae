export {
  MlsClient,
  type ExternalCommitBuilder,
  type ExternalJoin,
  type JoinedBy,
  type MlsClientOptions,
  type PendingOutcome,
  type WelcomeProcessor,
} from './client.js'
export { WelcomeAlreadyConsumedError, XrpcClientError, type XrpcClientErrorInit } from './errors.js'
export type * from './methods.js'
export { NSID, type Nsid } from '../lexicon/types/index.js'
export { defaultRetryOptions, retryAfterMs, retryDelayMs, withRetry, type RetryOptions } from './retry.js'
export {
  FilePendingStore,
  FileWelcomeStore,
  JsonFileRecordStore,
  MemoryPendingStore,
  MemoryRecordStore,
  MemoryWelcomeStore,
  type PendingOperation,
  type PendingStore,
  type RecordStore,
  type StoredWelcome,
  type WelcomeStore,
} from './stores.js'
export { XrpcClient, type JsonObject, type JsonValue, type TokenMinter, type XrpcClientOptions } from './xrpc.js'
export type {
  ConvoMetadata,
  ConvoView,
  KeyPackageRef,
  MemberView,
  MessageView,
} from '../lexicon/types/blue.catbird.mls.defs.js'
