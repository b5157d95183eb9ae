/**
 * `npm run dev`: the server from its sources under `tsx watch`, restarted on
 * every change (of `.env` too), with settings from `.env` as `npm start`
 * reads them; variables set in the environment win.
 */
import { loadProjectEnv } from './project-env.js'

loadProjectEnv('npm run dev')
// After .env is read: the server reads its configuration as it loads.
await import('../src/main.js')
