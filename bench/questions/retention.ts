import { count, insertOldMessages } from '../data.js'
import { checkpoint } from '../database.js'
import { atMost, type Section } from '../report.js'
import type { Bench } from '../setup.js'
import { workerUnderLoad } from '../worker-load.js'

/** Older than the 30 days messages are kept by default. */
const OLD = `now() - interval '30 days'`

/**
 * The retention worker deleting a backlog of messages past their horizon (in
 * conversations of their own, as after an upgrade that turned retention on),
 * under sendMessage with keys to the load's conversations.
 */
export function retentionUnderLoad(bench: Bench): Promise<Section> {
  const { convos, perConvo } = bench.settings.oldMessages
  return workerUnderLoad(bench, {
    title: 'Message retention under load',
    worker: 'retention worker',
    measure: '10. sendMessage p99 during retention / without retention',
    pass: 'retentionPass',
    async loadBacklog(pool) {
      await insertOldMessages(pool, convos, perConvo)
      await checkpoint(pool)
      return `${(convos * perConvo).toLocaleString('en-US')} messages older than the horizon bulk-loaded in ${convos} conversations`
    },
    backlogLeft: async (pool) =>
      (await count(pool, `SELECT count(*) AS n FROM (SELECT FROM message WHERE created_at < ${OLD} LIMIT 1) AS old`)) >
      0,
    vacuum: 'VACUUM message, commit, convo',
    async after(pool) {
      const oldLeft = await count(pool, `SELECT count(*) AS n FROM message WHERE created_at < ${OLD}`)
      return {
        targets: [atMost('10. messages past the horizon left after retention', oldLeft, 0, 0)],
        words: `Afterwards: ${oldLeft} messages past the horizon left.`,
      }
    },
  })
}
