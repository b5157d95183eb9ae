export {
  MlsClient,
  type ExternalCommitBuilder,
  type ExternalJoin,
  type JoinedBy,
  type MlsClientOptions,
  type PendingOutcome,
  type WelcomeProcessor,
} from './client.js'
export { SubscriptionError, WelcomeAlreadyConsumedError, XrpcClientError, type XrpcClientErrorInit } from './errors.js'
export type * from './methods.js'
export { NSID, type Nsid } from '../lexicon/types/index.js'
export { defaultRetryOptions, retryAfterMs, retryDelayMs, withRetry, type RetryOptions } from './retry.js'
export {
  FileCursorStore,
  FilePendingStore,
  FileWelcomeStore,
  JsonFileRecordStore,
  MemoryCursorStore,
  MemoryPendingStore,
  MemoryRecordStore,
  MemoryWelcomeStore,
  type CursorStore,
  type PendingOperation,
  type PendingStore,
  type RecordStore,
  type StoredCursor,
  type StoredWelcome,
  type WelcomeStore,
} from './stores.js'
export { ConvoEventSubscription, cursorKey, type ConvoEvent, type SubscribeOptions } from './subscription.js'
export { XrpcClient, type JsonObject, type JsonValue, type TokenMinter, type XrpcClientOptions } from './xrpc.js'
export type {
  ConvoMetadata,
  ConvoView,
  KeyPackageRef,
  MemberView,
  MessageView,
} from '../lexicon/types/blue.catbird.mls.defs.js'
