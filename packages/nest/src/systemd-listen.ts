// app.listen() on the socket systemd passed back (fd store or .socket unit), for both HTTP platforms.
import { type INestApplication, Logger } from '@nestjs/common'
import { fdStoreName, type ListenConfig, passedListenSocket } from '@sdnotify/core'
import { moduleOptions } from './module-options.js'

export interface SystemdListenOptions {
  /**
   * The name of this listener's socket: FDNAME of the fd store or a .socket unit's FileDescriptorName=.
   * Default: the module's `fdStore` name ('http').
   */
  name?: string
}

/**
 * `await systemdListen(app, 3000, '0.0.0.0')` instead of `await app.listen(3000, '0.0.0.0')`: listens on the
 * socket systemd passed back (the fd store's, with `fdStore`; or a .socket unit's) when there is one, else
 * binds `port` (a number, or a unix socket path) and `host` as app.listen would. A stored socket bound
 * elsewhere than `port`/`host` ask (the configuration changed) is dropped, removed from the store and the
 * address bound anew, with a warning in Nest's log. Resolves to the HTTP server, as app.listen does.
 */
export async function systemdListen (
  app: INestApplication,
  port: number | string,
  host?: string,
  options: SystemdListenOptions = {}
): ReturnType<INestApplication['listen']> {
  const fastify = app.getHttpAdapter().getType() === 'fastify'
  let config: ListenConfig
  if (typeof port === 'string' && Number.isNaN(Number(port))) config = { path: port }
  // Without a host, platform-fastify binds 'localhost' (Fastify's default), platform-express every interface.
  else config = { port: Number(port), host: host ?? (fastify ? 'localhost' : undefined) }
  const logger = new Logger('SdNotify')
  // Without SdNotifyModule (or its fdStore), whichever socket a .socket unit passed.
  const name = options.name ?? fdStoreName(moduleOptions(app)?.fdStore)
  const passed = passedListenSocket({ name, config, warn: (message) => logger.warn(message) })
  if (!passed) return host === undefined ? app.listen(port) : app.listen(port, host)
  // NestApplication.listen hands an object on to the platform: http.Server#listen({ fd }) on platform-express,
  // fastify.listen({ fd, host }) on platform-fastify. Node ignores host with fd; a host other than 'localhost'
  // keeps Fastify from binding loopback twins beside the passed socket.
  return app.listen({ fd: passed.fd, host: '0.0.0.0' } as unknown as number)
}
