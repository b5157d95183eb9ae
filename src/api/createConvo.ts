import type * as CreateConvo from '../lexicon/types/blue.catbird.mls.createConvo.js'
import { createConvo } from '../services/convos.js'
import { invalidRequest } from '../xrpc/errors.js'
import { xrpcHandler } from '../xrpc/types.js'
import { decodeBinaryField, requireCipherSuite } from './input.js'

export default xrpcHandler<CreateConvo.Params, CreateConvo.Input, CreateConvo.Output>(
  async ({ input, caller, db, ctx }) => {
    requireCipherSuite(input.cipherSuite)
    if (!/^[0-9a-fA-F]+$/.test(input.groupId)) {
      throw invalidRequest(undefined, 'groupId must be a hex-encoded MLS group id')
    }
    const { config } = ctx
    const welcome = decodeBinaryField(input.welcomeMessage, 'welcomeMessage', config.MAX_WELCOME_BYTES)
    return createConvo(db, {
      creator: caller,
      groupId: input.groupId,
      cipherSuite: input.cipherSuite,
      initialMembers: input.initialMembers ?? [],
      welcome,
      name: input.metadata?.name,
      description: input.metadata?.description,
      welcomeRetentionDays: config.WELCOME_RETENTION_DAYS,
    })
  },
)
