/**
 * Administration of conversations: admins and moderators, removals with the
 * commit that makes them, the policy, and members' reports.
 * Services: roles, members, removal, policy, reports.
 */
import { NSID } from '../../lexicon/types/index.js'
import demoteAdmin from './demoteAdmin.js'
import demoteModerator from './demoteModerator.js'
import getAdminStats from './getAdminStats.js'
import getPolicy from './getPolicy.js'
import getReports from './getReports.js'
import promoteAdmin from './promoteAdmin.js'
import promoteModerator from './promoteModerator.js'
import removeMember from './removeMember.js'
import reportMember from './reportMember.js'
import resolveReport from './resolveReport.js'
import updatePolicy from './updatePolicy.js'

export const adminHandlers = {
  [NSID.demoteAdmin]: demoteAdmin,
  [NSID.demoteModerator]: demoteModerator,
  [NSID.getAdminStats]: getAdminStats,
  [NSID.getPolicy]: getPolicy,
  [NSID.getReports]: getReports,
  [NSID.promoteAdmin]: promoteAdmin,
  [NSID.promoteModerator]: promoteModerator,
  [NSID.removeMember]: removeMember,
  [NSID.reportMember]: reportMember,
  [NSID.resolveReport]: resolveReport,
  [NSID.updatePolicy]: updatePolicy,
}
