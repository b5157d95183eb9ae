export interface XrpcClientErrorInit {
  nsid: string
  /** HTTP status; 0 when no complete, readable response arrived. */
  status: number
  error: string
  message: string
  headers?: Headers
  cause?: unknown
}

/** Errors answered by the server (status >= 400) and failures to get an answer at all (status 0). */
export class XrpcClientError extends Error {
  override name = 'XrpcClientError'
  readonly nsid: string
  readonly status: number
  /** The XRPC error name, such as `ConvoNotFound`; `NetworkError` when status is 0. */
  readonly error: string
  readonly headers: Headers

  constructor(init: XrpcClientErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause })
    this.nsid = init.nsid
    this.status = init.status
    this.error = init.error
    this.headers = init.headers ?? new Headers()
  }

  /**
   * True when sending the same request again may succeed: no answer, a
   * server failure, a timeout, rate limiting, or the same idempotency key
   * still being processed by an earlier attempt.
   */
  get retryable(): boolean {
    return (
      this.status === 0 ||
      this.status >= 500 ||
      this.status === 408 ||
      this.status === 429 ||
      (this.status === 409 && this.error === 'IdempotencyRequestInProgress')
    )
  }

  /** A definitive refusal: sending the request again would be refused again. */
  get permanent(): boolean {
    return this.status >= 400 && this.status < 500 && !this.retryable
  }
}

/**
 * The server answered 410: the Welcome was processed (confirmed) earlier and
 * this device holds no copy of it. Only the stored copy could have helped;
 * the member has to be added to the group again.
 */
export class WelcomeAlreadyConsumedError extends Error {
  override name = 'WelcomeAlreadyConsumedError'

  constructor(
    readonly convoId: string,
    cause: XrpcClientError,
  ) {
    super(
      `The Welcome for conversation ${convoId} was already consumed and no copy is stored on this device; ` +
        'a member has to add this account to the group again',
      { cause },
    )
  }
}

/**
 * The event subscription was refused for good (an atproto error frame the
 * SDK does not recover from by connecting again): NotMember, ConvoNotFound,
 * FutureCursor or InvalidCursor (the kept cursor is not the server's: clear
 * it and resync with getMessages), AuthRequired, InvalidTicket, InvalidFrame.
 */
export class SubscriptionError extends Error {
  override name = 'SubscriptionError'

  constructor(
    readonly error: string,
    message: string,
  ) {
    super(message ? `${error}: ${message}` : error)
  }
}
