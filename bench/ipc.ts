import type { ServerCommands, ServerMessage, ServerRequest } from './server.js'

type CommandHandlers = Partial<{ [K in keyof ServerCommands]: () => Promise<ServerCommands[K]> }>

/**
 * The child's side of server.ts: answers the bench's commands over IPC
 * (exiting once `stop` is answered), and tells it the process listens at `url`.
 */
export function answerCommands(handlers: CommandHandlers, url: string): void {
  const send = (message: ServerMessage, then: () => void = () => {}) => process.send?.(message, then)
  process.on('message', ({ id, command }: ServerRequest) => {
    const handler = handlers[command] ?? (() => Promise.reject(new Error(`this process has no command ${command}`)))
    handler().then(
      (result) => send({ id, result }, command === 'stop' ? () => process.exit(0) : undefined),
      (err: unknown) => send({ id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
    )
  })
  send({ ready: url })
}
