import { type AnyServer, attachmentOf } from './attach.js'

export { attach, attachmentOf } from './attach.js'
export type { AnyServer, Attachment } from './attach.js'
export { listen } from './listen.js'
export type { ListenCallback, RequestHandler } from './listen.js'
export type { ListenOptions, SdNotifyServerOptions } from './options.js'
export type { Notifier } from '@sdnotify/core'

/**
 * Graceful stop of a server made by listen() or attach(): STOPPING=1, drain, close. For any other server it
 * just closes it.
 */
export function close (server: AnyServer): Promise<void> {
  const attachment = attachmentOf(server)
  if (attachment) return attachment.close()
  return new Promise((resolve, reject) => server.close((error?: Error) => (error ? reject(error) : resolve())))
}
