import { NSID } from '../../lexicon/types/index.js'
import { resolveReport } from '../../services/reports.js'
import { handler } from '../../xrpc/types.js'

export default handler(NSID.resolveReport, async ({ input, caller, db }) => {
  await resolveReport(db, { reportId: input.reportId, caller, action: input.action, notes: input.notes })
  return { ok: true }
})
