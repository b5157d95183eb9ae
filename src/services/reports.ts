/**
 * Members' reports about each other, for their conversation's admins (and
 * moderators, who may read them). What a report holds is stored as the
 * reporter sent it: the field is called encryptedContent, but the
 * client-era client sends its text as UTF-8, so the server can read it.
 */
import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import type { Db, ReportStatus } from '../db/schema.js'
import { transact } from '../db/transaction.js'
import type { ModerationStats } from '../lexicon/types/blue.catbird.mls.getAdminStats.js'
import type { ReportView } from '../lexicon/types/blue.catbird.mls.getReports.js'
import { recordAdminAction } from './adminActions.js'
import { conflict, invalidRequest, notAdmin, notFound } from './errors.js'
import { requireMember } from './membership.js'
import { iso } from './timestamps.js'

/** Reports one member may have waiting in one conversation: reporting is not a way to fill the server's disk. */
const MAX_PENDING_REPORTS = 10
const MAX_CATEGORY_LENGTH = 64

/** A report's category as the stats count it (any other category counts as other). */
const CATEGORY_FIELDS = {
  harassment: 'harassment',
  spam: 'spam',
  hate_speech: 'hateSpeech',
  violence: 'violence',
  sexual_content: 'sexualContent',
  impersonation: 'impersonation',
  privacy_violation: 'privacyViolation',
} as const

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The caller's role in a conversation it is a current member of (403 NotMember otherwise). */
async function roleIn(
  db: Db,
  convoId: string,
  did: string,
): Promise<{ convoId: string; groupId: string; role: string }> {
  const { convo } = await requireMember(db, convoId, did)
  const row = await db
    .selectFrom('member')
    .select('role')
    .where('convo_id', '=', convo.id)
    .where('did', '=', did)
    .executeTakeFirstOrThrow()
  return { convoId: convo.id, groupId: convo.group_id.toLowerCase(), role: row.role }
}

export interface ReportArgs {
  convoId: string
  caller: string
  reported: string
  category: string
  content: Uint8Array
  messageIds: string[]
}

/**
 * A current member reports another current member, about messages the
 * reporter could see (by id or by the client's msgId). Refused: the caller
 * not a member (403 NotMember), the reported one not a member (400
 * TargetNotMember), oneself (400 CannotReportSelf), messages the reporter
 * never saw (400), more than MAX_PENDING_REPORTS waiting (400 TooManyReports).
 */
export async function reportMember(db: Db, args: ReportArgs): Promise<{ reportId: string; submittedAt: string }> {
  if (args.category.length === 0 || args.category.length > MAX_CATEGORY_LENGTH) {
    throw invalidRequest(undefined, `category must be 1 to ${MAX_CATEGORY_LENGTH} characters`)
  }
  const { convo, joinedSeq } = await requireMember(db, args.convoId, args.caller)
  if (args.reported === args.caller) throw invalidRequest('CannotReportSelf', 'You cannot report yourself')
  const reported = await db
    .selectFrom('member')
    .select('did')
    .where('convo_id', '=', convo.id)
    .where('did', '=', args.reported)
    .where('left_at', 'is', null)
    .executeTakeFirst()
  if (!reported) {
    throw invalidRequest('TargetNotMember', `${args.reported} is not a member of this conversation`)
  }
  await requireSeenMessages(db, convo.id, joinedSeq, args.messageIds)
  const { rows } = await sql<{ id: string; created_at: Date }>`
    INSERT INTO member_report (convo_id, id, reporter_did, reported_did, category, content, message_ids)
    SELECT ${convo.id}, ${randomUUID()}, ${args.caller}, ${args.reported}, ${args.category}, ${args.content},
           ${args.messageIds}::text[]
    WHERE (SELECT count(*) FROM member_report
           WHERE convo_id = ${convo.id} AND reporter_did = ${args.caller} AND status = 'pending') < ${MAX_PENDING_REPORTS}
    RETURNING id, created_at`.execute(db)
  const row = rows[0]
  if (!row) {
    throw invalidRequest(
      'TooManyReports',
      `You have ${MAX_PENDING_REPORTS} reports waiting in this conversation; wait for its admins to resolve them`,
    )
  }
  return { reportId: row.id, submittedAt: iso(row.created_at) }
}

/** Every id names a message of the conversation sent while the reporter was a member (its id, or the client's msgId). */
async function requireSeenMessages(db: Db, convoId: string, joinedSeq: number, ids: string[]): Promise<void> {
  const wanted = [...new Set(ids)]
  if (wanted.length === 0) return
  const found = await db
    .selectFrom('message')
    .select(['id', 'msg_id'])
    .where('convo_id', '=', convoId)
    .where('seq', '>', joinedSeq)
    .where((eb) => {
      const uuids = wanted.filter((id) => UUID.test(id))
      return eb.or([eb('msg_id', 'in', wanted), ...(uuids.length ? [eb('id', 'in', uuids)] : [])])
    })
    .execute()
  const known = new Set(found.flatMap((m) => [m.id, m.msg_id]))
  const unknown = wanted.filter((id) => !known.has(id) && !known.has(id.toLowerCase()))
  if (unknown.length > 0) {
    throw invalidRequest(
      undefined,
      `messageIds: ${unknown.join(', ')} is not a message of this conversation that you received (or it is no longer kept)`,
    )
  }
}

interface ReportRow {
  id: string
  reporter_did: string
  reported_did: string
  content: Uint8Array
  created_at: Date
  status: ReportStatus
  resolved_by: string | null
  resolved_at: Date | null
}

const toReportView = (r: ReportRow): ReportView => ({
  id: r.id,
  reporterDid: r.reporter_did,
  reportedDid: r.reported_did,
  encryptedContent: r.content,
  createdAt: iso(r.created_at),
  status: r.status,
  ...(r.resolved_by ? { resolvedBy: r.resolved_by } : {}),
  ...(r.resolved_at ? { resolvedAt: iso(r.resolved_at) } : {}),
})

const STATUSES: ReportStatus[] = ['pending', 'resolved', 'dismissed']

/** An admin or moderator lists the conversation's reports, newest first. */
export async function listReports(
  db: Db,
  args: { convoId: string; caller: string; status?: string | undefined; limit: number },
): Promise<ReportView[]> {
  const { status } = args
  if (status !== undefined && !(STATUSES as string[]).includes(status)) {
    throw invalidRequest(undefined, `status must be one of ${STATUSES.join(', ')}`)
  }
  const { convoId, role } = await roleIn(db, args.convoId, args.caller)
  if (role === 'member') throw notAdmin('only admins and moderators read its reports')
  const rows = await db
    .selectFrom('member_report')
    .select(['id', 'reporter_did', 'reported_did', 'content', 'created_at', 'status', 'resolved_by', 'resolved_at'])
    .where('convo_id', '=', convoId)
    .$if(status !== undefined, (qb) => qb.where('status', '=', status as ReportStatus))
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(args.limit)
    .execute()
  return rows.map(toReportView)
}

export type ResolveAction = 'removed_member' | 'dismissed' | 'no_action'

const reportNotFound = () => notFound('ReportNotFound', 'No report has this id')

/**
 * An admin of the report's conversation records what was done. Refused: a
 * report of a conversation the caller is not a member of, or none (404
 * ReportNotFound), a caller who is not its admin (403 NotAdmin), one
 * resolved already (409 AlreadyResolved), `removed_member` while the
 * reported member is still a member (400: remove them first).
 */
export async function resolveReport(
  db: Db,
  args: { reportId: string; caller: string; action: string; notes?: string | undefined },
): Promise<void> {
  const action = args.action as ResolveAction
  if (!['removed_member', 'dismissed', 'no_action'].includes(action)) {
    throw invalidRequest(undefined, 'action must be removed_member, dismissed or no_action')
  }
  if (!UUID.test(args.reportId)) throw reportNotFound()
  const found = await db
    .selectFrom('member_report')
    .innerJoin('member', (join) =>
      join
        .onRef('member.convo_id', '=', 'member_report.convo_id')
        .on('member.did', '=', args.caller)
        .on('member.left_at', 'is', null),
    )
    .select(['member_report.convo_id', 'member.role'])
    .where('member_report.id', '=', args.reportId)
    .executeTakeFirst()
  // Whether a report exists is its conversation's business.
  if (!found) throw reportNotFound()
  if (found.role !== 'admin') throw notAdmin('only admins resolve its reports')
  await transact(db, async (trx) => {
    // The conversation named as a value in the subquery too: Citus locks (FOR UPDATE) only where every table is filtered by it.
    const { rows } = await sql<{ status: ReportStatus; reported_still_member: boolean }>`
      SELECT r.status, EXISTS (SELECT 1 FROM member m
        WHERE m.convo_id = ${found.convo_id} AND m.did = r.reported_did AND m.left_at IS NULL) AS reported_still_member
      FROM member_report r WHERE r.convo_id = ${found.convo_id} AND r.id = ${args.reportId}
      FOR UPDATE OF r`.execute(trx)
    const report = rows[0]
    if (!report) throw reportNotFound()
    if (report.status !== 'pending') throw conflict('AlreadyResolved', `The report was ${report.status} already`)
    if (action === 'removed_member' && report.reported_still_member) {
      throw invalidRequest(
        undefined,
        'action removed_member: the reported member is still a member; remove them first (removeMember)',
      )
    }
    await trx
      .updateTable('member_report')
      .set({
        status: action === 'dismissed' ? 'dismissed' : 'resolved',
        resolved_by: args.caller,
        resolved_at: sql<Date>`now()`,
        resolution_action: action,
        resolution_notes: args.notes ?? null,
      })
      .where('convo_id', '=', found.convo_id)
      .where('id', '=', args.reportId)
      .execute()
    await recordAdminAction(trx, {
      convoId: found.convo_id,
      actor: args.caller,
      action: 'resolve_report',
      reason: action,
    })
  })
}

/**
 * The moderation counts of one conversation, for its admins only (403
 * NotAdmin otherwise): reports, their resolution, removals by admins, and
 * block conflicts that ended with an admin removing one of the two.
 */
export async function moderationStats(
  db: Db,
  args: { convoId: string; caller: string; since?: string | undefined },
): Promise<{ stats: ModerationStats; groupId: string }> {
  const { convoId, groupId, role } = await roleIn(db, args.convoId, args.caller)
  if (role !== 'admin') throw notAdmin('only admins read its moderation counts')
  const since = args.since ?? '-infinity'
  const categories = Object.keys(CATEGORY_FIELDS)
  const { rows } = await sql<Record<string, number | null>>`
    SELECT
      (SELECT count(*)::int FROM member_report WHERE convo_id = ${convoId} AND created_at > ${since}::timestamptz) AS total,
      (SELECT count(*)::int FROM member_report WHERE convo_id = ${convoId} AND created_at > ${since}::timestamptz AND status = 'pending') AS pending,
      (SELECT round(avg(extract(epoch FROM resolved_at - created_at)) / 3600)::int FROM member_report
        WHERE convo_id = ${convoId} AND created_at > ${since}::timestamptz AND status <> 'pending') AS resolution_hours,
      (SELECT count(*)::int FROM admin_action
        WHERE convo_id = ${convoId} AND created_at > ${since}::timestamptz AND action = 'remove_member') AS removals,
      (SELECT count(*)::int FROM admin_action b
        WHERE b.convo_id = ${convoId} AND b.created_at > ${since}::timestamptz AND b.action = 'block_reported'
          AND EXISTS (SELECT 1 FROM admin_action r WHERE r.convo_id = b.convo_id AND r.action = 'remove_member'
                      AND r.created_at >= b.created_at AND r.target_did IN (b.actor_did, b.target_did))) AS block_conflicts,
      ${sql.join(
        categories.map(
          (category) =>
            sql`(SELECT count(*)::int FROM member_report WHERE convo_id = ${convoId} AND created_at > ${since}::timestamptz AND category = ${category}) AS ${sql.ref(category)}`,
        ),
      )}`.execute(db)
  const row = rows[0] as Record<string, number | null>
  const total = row.total ?? 0
  const pending = row.pending ?? 0
  const byCategory = Object.fromEntries(
    Object.entries(CATEGORY_FIELDS).map(([category, field]) => [field, row[category] ?? 0]),
  )
  const counted = Object.values(byCategory).reduce((sum, n) => sum + n, 0)
  const stats: ModerationStats = {
    totalReports: total,
    pendingReports: pending,
    resolvedReports: total - pending,
    totalRemovals: row.removals ?? 0,
    blockConflictsResolved: row.block_conflicts ?? 0,
    reportsByCategory: { ...byCategory, otherCategory: total - counted },
    ...(row.resolution_hours !== null && row.resolution_hours !== undefined
      ? { averageResolutionTimeHours: row.resolution_hours }
      : {}),
  }
  return { stats, groupId }
}
