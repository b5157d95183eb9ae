import { randomUUID } from 'node:crypto'
import { NSID } from '../lexicon/types/index.js'
import { base64Bytes, encodeBase64 } from '../lexicon/wire.js'
import { WelcomeAlreadyConsumedError, XrpcClientError } from './errors.js'
import {
  isKeyedProcedure,
  type AddMembers,
  type ConfirmWelcome,
  type CreateConvo,
  type GetCommits,
  type GetConvos,
  type GetEpoch,
  type GetGroupInfo,
  type GetKeyPackages,
  type GetKeyPackageStats,
  type GetMessages,
  type GetWelcome,
  type LeaveConvo,
  type ProcedureNsid,
  type ProcessExternalCommit,
  type Procedures,
  type PublishKeyPackage,
  type Queries,
  type QueryNsid,
  type SendMessage,
  type UpdateGroupInfo,
} from './methods.js'
import { defaultRetryOptions, withRetry, type RetryOptions } from './retry.js'
import {
  MemoryCursorStore,
  MemoryPendingStore,
  MemoryWelcomeStore,
  type CursorStore,
  type PendingOperation,
  type PendingStore,
  type WelcomeStore,
} from './stores.js'
import { ConvoEventSubscription, type SubscribeOptions } from './subscription.js'
import { inputToJson, XrpcClient, type XrpcClientOptions } from './xrpc.js'

export interface MlsClientOptions extends XrpcClientOptions {
  /** Where writes wait for a definitive answer. Default: in memory (lost on exit). */
  pendingStore?: PendingStore
  /** Where fetched Welcomes wait for a confirmed join. Default: in memory (lost on exit). */
  welcomeStore?: WelcomeStore
  /** Where event subscriptions keep their cursor. Default: in memory (lost on exit). */
  cursorStore?: CursorStore
  retry?: Partial<RetryOptions>
}

/** What became of one resumed operation. */
export type PendingOutcome = {
  [N in ProcedureNsid]:
    | { nsid: N; operation: PendingOperation; ok: true; output: Procedures[N]['output'] }
    | { nsid: N; operation: PendingOperation; ok: false; error: unknown }
}[ProcedureNsid]

/** Turns a Welcome's bytes into group state (an MLS library's join); throws when it cannot. */
export type WelcomeProcessor = (welcome: Uint8Array) => Promise<void>

/** What an MLS library makes to rejoin a group by external commit (RFC 9420 §12.4.3.2). */
export interface ExternalJoin {
  /** The external commit: an MLSMessage carrying a PublicMessage, whose new leaf names the caller's DID. */
  commit: Uint8Array
  /**
   * The GroupInfo of the epoch the commit leads to (with the external_pub
   * extension): sent along, so the next member to recover finds one.
   */
  groupInfo?: Uint8Array
  /** The server took the commit: adopt the group state it leads to (not before: it may be refused). */
  accepted?: () => void | Promise<void>
}

/**
 * Builds an external commit on a GroupInfo (the bytes getGroupInfo
 * returned, of `epoch`), replacing the caller's old leaf (resync). The MLS
 * library is the app's: the SDK only carries bytes.
 */
export type ExternalCommitBuilder = (groupInfo: Uint8Array, epoch: number) => Promise<ExternalJoin>

/** How a join got the device into its group. */
export type JoinedBy = 'welcome' | 'externalCommit'

const MAX_ERROR_DETAILS = 1024

/**
 * The client side of the server's guarantees (its guide: src/client/README.md):
 *
 * - every write is stored with its idempotency key before it is sent, resent
 *   with the same key until the server answers definitively, and removed only
 *   then; `retryPending()` resumes what a previous process left;
 * - a Welcome is stored before it is processed, confirmed afterwards, and kept
 *   until a successful join is confirmed, so a failed or interrupted join can
 *   be retried from the stored copy.
 *
 * Reads are retried on transient failures too. getKeyPackages hands each key
 * package out once, so a response lost in transit costs that key package.
 */
export class MlsClient {
  readonly xrpc: XrpcClient
  readonly pendingStore: PendingStore
  readonly welcomeStore: WelcomeStore
  readonly cursorStore: CursorStore
  private readonly retry: RetryOptions
  private readonly serviceUrl: string
  /** Operations being sent by this process, which retryPending() leaves alone. */
  private readonly inFlight = new Set<string>()

  constructor(opts: MlsClientOptions) {
    this.xrpc = new XrpcClient(opts)
    this.pendingStore = opts.pendingStore ?? new MemoryPendingStore()
    this.welcomeStore = opts.welcomeStore ?? new MemoryWelcomeStore()
    this.cursorStore = opts.cursorStore ?? new MemoryCursorStore()
    this.retry = { ...defaultRetryOptions, ...opts.retry }
    this.serviceUrl = opts.serviceUrl
  }

  // Live events.

  /**
   * The live events of the user's conversations (or of one), over a
   * WebSocket: iterate the result. Resumes from the cursor kept in
   * `cursorStore`, across dropped connections and restarts (see
   * ConvoEventSubscription).
   */
  subscribe(opts: SubscribeOptions = {}): ConvoEventSubscription {
    return new ConvoEventSubscription(this.xrpc, this.serviceUrl, this.cursorStore, this.retry, opts)
  }

  // Writes: stored, sent and retried with one idempotency key each.

  createConvo(input: CreateConvo.Input): Promise<CreateConvo.Output> {
    return this.write(NSID.createConvo, input)
  }

  addMembers(input: AddMembers.Input): Promise<AddMembers.Output> {
    return this.write(NSID.addMembers, input)
  }

  leaveConvo(input: LeaveConvo.Input): Promise<LeaveConvo.Output> {
    return this.write(NSID.leaveConvo, input)
  }

  sendMessage(input: SendMessage.Input): Promise<SendMessage.Output> {
    return this.write(NSID.sendMessage, input)
  }

  publishKeyPackage(input: PublishKeyPackage.Input): Promise<PublishKeyPackage.Output> {
    return this.write(NSID.publishKeyPackage, input)
  }

  confirmWelcome(input: ConfirmWelcome.Input): Promise<ConfirmWelcome.Output> {
    return this.write(NSID.confirmWelcome, input)
  }

  processExternalCommit(input: ProcessExternalCommit.Input): Promise<ProcessExternalCommit.Output> {
    return this.write(NSID.processExternalCommit, input)
  }

  updateGroupInfo(input: UpdateGroupInfo.Input): Promise<UpdateGroupInfo.Output> {
    return this.write(NSID.updateGroupInfo, input)
  }

  // Reads: retried on transient failures, nothing stored.

  getConvos(params: GetConvos.Params = {}): Promise<GetConvos.Output> {
    return this.read(NSID.getConvos, params)
  }

  getMessages(params: GetMessages.Params): Promise<GetMessages.Output> {
    return this.read(NSID.getMessages, params)
  }

  getEpoch(params: GetEpoch.Params): Promise<GetEpoch.Output> {
    return this.read(NSID.getEpoch, params)
  }

  getCommits(params: GetCommits.Params): Promise<GetCommits.Output> {
    return this.read(NSID.getCommits, params)
  }

  getKeyPackages(params: GetKeyPackages.Params): Promise<GetKeyPackages.Output> {
    return this.read(NSID.getKeyPackages, params)
  }

  getKeyPackageStats(params: GetKeyPackageStats.Params = {}): Promise<GetKeyPackageStats.Output> {
    return this.read(NSID.getKeyPackageStats, params)
  }

  getWelcome(params: GetWelcome.Params): Promise<GetWelcome.Output> {
    return this.read(NSID.getWelcome, params)
  }

  getGroupInfo(params: GetGroupInfo.Params): Promise<GetGroupInfo.Output> {
    return this.read(NSID.getGroupInfo, params)
  }

  /**
   * Gets a device that lost its MLS state (or never processed its Welcome)
   * back into a conversation it is still a member of: fetches the GroupInfo,
   * has `build` make the external commit on it, and sends the commit with
   * the GroupInfo of the epoch it leads to (stored with its idempotency key
   * like every write). When another commit came first (409 EpochMismatch),
   * it starts again on the new epoch's GroupInfo, up to `retry.maxAttempts`
   * times. `accepted` of the join the server took is called before this
   * resolves. Refusals are thrown: NotMember (a former member has to be
   * added again), GroupInfoUnavailable (no member stored one for the
   * current epoch yet).
   */
  async recoverConversation(convoId: string, build: ExternalCommitBuilder): Promise<ProcessExternalCommit.Output> {
    for (let attempt = 1; ; attempt++) {
      const { groupInfo, epoch } = await this.getGroupInfo({ convoId })
      const join = await build(base64Bytes(groupInfo), epoch)
      try {
        const output = await this.processExternalCommit({
          convoId,
          externalCommit: encodeBase64(join.commit),
          ...(join.groupInfo ? { groupInfo: encodeBase64(join.groupInfo) } : {}),
        })
        await join.accepted?.()
        return output
      } catch (err) {
        const overtaken = err instanceof XrpcClientError && err.error === 'EpochMismatch'
        if (!overtaken || attempt >= this.retry.maxAttempts) throw err
      }
    }
  }

  /**
   * Joins a conversation: fetches the Welcome, stores it, hands it to
   * `process`, then confirms the outcome. When `process` throws, the failure
   * is reported (the server keeps the Welcome available), the stored copy is
   * kept for retryFailedWelcome(), and the error is rethrown. When the
   * Welcome is gone for good (consumed, and no copy on this device) and
   * `recover` is given, the device rejoins by external commit instead
   * (recoverConversation).
   */
  async joinFromWelcome(
    convoId: string,
    process: WelcomeProcessor,
    recover?: ExternalCommitBuilder,
  ): Promise<JoinedBy> {
    return this.join(convoId, () => this.fetchWelcome(convoId), process, recover)
  }

  /**
   * Retries a join that failed or was interrupted: from the stored copy when
   * there is one, else by fetching again (allowed within the grace period).
   * When the server has no Welcome left to give and there is no stored copy:
   * rejoins by external commit with `recover`, or throws
   * WelcomeAlreadyConsumedError without it.
   */
  async retryFailedWelcome(
    convoId: string,
    process: WelcomeProcessor,
    recover?: ExternalCommitBuilder,
  ): Promise<JoinedBy> {
    const stored = await this.welcomeStore.get(convoId)
    return this.join(convoId, async () => stored?.welcome ?? this.fetchWelcome(convoId), process, recover)
  }

  /**
   * Resends the stored operations this process is not already sending (after
   * a restart), one at a time in the order they were made, so writes to one
   * conversation keep their order.
   */
  async retryPending(): Promise<PendingOutcome[]> {
    const operations = (await this.pendingStore.list())
      .filter((op) => !this.inFlight.has(op.id))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    const outcomes: PendingOutcome[] = []
    for (const operation of operations) {
      const { nsid } = operation
      try {
        outcomes.push({ nsid, operation, ok: true, output: await this.complete(operation) } as PendingOutcome)
      } catch (error) {
        // Cast: past 25 procedures TypeScript no longer relates the NSID to the union of outcomes.
        outcomes.push({ nsid, operation, ok: false, error } as PendingOutcome)
      }
    }
    return outcomes
  }

  private read<N extends QueryNsid>(nsid: N, params: Queries[N]['params']): Promise<Queries[N]['output']> {
    return withRetry(() => this.xrpc.query(nsid, params), this.retry)
  }

  private async write<N extends ProcedureNsid>(
    nsid: N,
    input: Procedures[N]['input'],
  ): Promise<Procedures[N]['output']> {
    const given = 'idempotencyKey' in input ? input.idempotencyKey : undefined
    const id = given ?? randomUUID()
    const operation: PendingOperation = {
      id,
      nsid,
      // Procedures without a key in their input are idempotent by nature.
      input: inputToJson(isKeyedProcedure(nsid) ? { ...input, idempotencyKey: id } : input),
      createdAt: new Date().toISOString(),
    }
    await this.pendingStore.put(id, operation)
    return this.complete<N>(operation)
  }

  /**
   * Sends a stored operation until a definitive answer. Success and
   * refusals remove it; anything else (attempts exhausted, no token) leaves
   * it stored for retryPending().
   */
  private async complete<N extends ProcedureNsid>(operation: PendingOperation): Promise<Procedures[N]['output']> {
    this.inFlight.add(operation.id)
    try {
      const output = await withRetry(() => this.xrpc.procedureJson<N>(operation.nsid as N, operation.input), this.retry)
      await this.settled(operation)
      return output
    } catch (err) {
      if (err instanceof XrpcClientError && err.permanent) await this.pendingStore.delete(operation.id)
      throw err
    } finally {
      this.inFlight.delete(operation.id)
    }
  }

  private async settled(operation: PendingOperation): Promise<void> {
    const { nsid, input } = operation
    // The join is on record: the stored Welcome is no longer needed.
    if (nsid === NSID.confirmWelcome && input.success === true) await this.welcomeStore.delete(String(input.convoId))
    await this.pendingStore.delete(operation.id)
  }

  /** getWelcome, storing the result before anyone processes it. */
  private async fetchWelcome(convoId: string): Promise<string> {
    const { welcome } = await this.getWelcome({ convoId }).catch((err: unknown) => {
      throw err instanceof XrpcClientError && err.status === 410 ? new WelcomeAlreadyConsumedError(convoId, err) : err
    })
    await this.welcomeStore.put(convoId, { convoId, welcome, storedAt: new Date().toISOString() })
    return welcome
  }

  private async join(
    convoId: string,
    welcomeOf: () => Promise<string>,
    process: WelcomeProcessor,
    recover: ExternalCommitBuilder | undefined,
  ): Promise<JoinedBy> {
    let welcome: string
    try {
      welcome = await welcomeOf()
    } catch (err) {
      if (!(err instanceof WelcomeAlreadyConsumedError) || !recover) throw err
      await this.recoverConversation(convoId, recover)
      return 'externalCommit'
    }
    await this.processWelcome(convoId, welcome, process)
    return 'welcome'
  }

  private async processWelcome(convoId: string, welcome: string, process: WelcomeProcessor): Promise<void> {
    try {
      await process(base64Bytes(welcome))
    } catch (err) {
      const details = err instanceof Error ? err.message : String(err)
      // A report that cannot be delivered now stays pending; the stored copy
      // allows a retry either way, so the processing error is what matters.
      await this.confirmWelcome({ convoId, success: false, errorDetails: details.slice(0, MAX_ERROR_DETAILS) }).catch(
        () => undefined,
      )
      throw err
    }
    await this.confirmWelcome({ convoId, success: true })
  }
}
