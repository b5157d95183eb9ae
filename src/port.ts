import { createServer } from 'node:net'
import { StartupError } from './startup-error.js'

/** The one-sentence reason a listen on `port` failed, for the errors people can fix. */
export function listenFailure(err: unknown, port: number): unknown {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EADDRINUSE') return new StartupError(`port ${port} is in use; set PORT to a free port.`)
  if (code === 'EACCES')
    return new StartupError(`port ${port} needs privileges this process lacks; set PORT to a port above 1023.`)
  return err
}

/**
 * Fails at once when the port is taken, before the build, the database and
 * the migrations make the failure cost seconds.
 */
export async function assertPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return
  const probe = createServer()
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (err) => reject(listenFailure(err, port)))
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()))
  })
}
