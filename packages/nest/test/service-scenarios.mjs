// SdNotifyService's shortcuts and its failure paths, handleSignals and systemdListen without SdNotifyModule, run by
// test/service.test.ts in a plain `node` process (tap's TypeScript loader mis-resolves NestJS 12's exports). Each
// prints one JSON line of what it saw; notifications go to the fake manager at $FAKE (the test reads them there).
import 'reflect-metadata'
import { rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Injectable } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { handleSignals, SdNotifyModule, SdNotifyService, systemdListen } from '@sdnotify/nest'
import { appModule, env, HelloController, out, sleep } from './scenario-app.mjs'

// No enableShutdownHooks() in most scenarios: its warning is tested in module.test.ts.
const quiet = { warnWithoutShutdownHooks: false }

/** A logger that keeps what it is given, for scenarios that check what was logged. */
function keepingLogger () {
  const logged = { error: [], warn: [] }
  const keep = (level) => (message) => logged[level].push(String(message))
  const logger = { log () {}, debug () {}, verbose () {}, error: keep('error'), warn: keep('warn') }
  return { logger, logged }
}

/** GET / over a unix socket. */
function getOverUnixSocket (socketPath) {
  return new Promise((resolve, reject) => {
    request({ socketPath, path: '/' }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => resolve(body))
    }).on('error', reject).end()
  })
}

const scenarios = {
  // The service's shortcuts send what they say, and resolve true once the manager has it.
  async shortcuts () {
    const sdNotify = SdNotifyModule.forRoot({ notifierOptions: { env }, readyOn: 'bootstrap' })
    const app = await NestFactory.createApplicationContext(appModule([sdNotify]), { logger: false })
    const service = app.get(SdNotifyService)
    const results = [
      await service.extendTimeout(2500),
      await service.send({ status: 'Migrating', busError: 'org.freedesktop.DBus.Error.TimedOut' }),
      await service.errno(13),
      await service.status('still here'),
    ]
    await app.close()
    out({ results })
  },

  // A transport that cannot load (transport 'fd' without OpenFile=): every step is logged, none throws; the app
  // serves and closes as without the module.
  async unreachable () {
    const { logger, logged } = keepingLogger()
    const sdNotify = SdNotifyModule.forRoot({ notifierOptions: { env, transport: 'fd' }, ...quiet })
    const app = await NestFactory.create(appModule([sdNotify], [], [HelloController]), { logger })
    await app.listen(0, '127.0.0.1')
    const port = app.getHttpServer().address().port
    const body = await (await fetch(`http://127.0.0.1:${port}/`)).text()
    await app.close()
    out({ body, warnings: logged.warn, errors: logged.error })
  },

  // A listen error while the transport cannot load: the failed report is logged, app.listen() rejects as ever.
  async 'unreachable-listen-error' (port) {
    const { logger, logged } = keepingLogger()
    const sdNotify = SdNotifyModule.forRoot({ notifierOptions: { env, transport: 'fd' }, ...quiet })
    const app = await NestFactory.create(appModule([sdNotify]), { logger })
    try {
      await app.listen(Number(port), '127.0.0.1')
      out({ listened: true })
    } catch (error) {
      await sleep(50) // the failed report is logged asynchronously
      out({ code: error.code, warnings: logged.warn })
    }
  },

  // The server's own listen() on a busy port, with no 'error' listener of the app's: systemd is told, then the
  // error is thrown as Node's emit would throw it (uncaught: the process ends with it).
  async 'unhandled-listen-error' (port) {
    const sdNotify = SdNotifyModule.forRoot({ notifierOptions: { env } })
    const app = await NestFactory.create(appModule([sdNotify]), { logger: false })
    await app.init()
    const server = app.getHttpServer()
    console.log(JSON.stringify({ errorListeners: server.listenerCount('error') }))
    server.listen(Number(port), '127.0.0.1')
  },

  // readyOn 'listen' (or fdStore) in an application without an HTTP server: a warning, then READY=1 anyway.
  async 'no-server' (option) {
    const { logger, logged } = keepingLogger()
    const options = option === 'fdStore' ? { fdStore: true } : { readyOn: 'listen' }
    const sdNotify = SdNotifyModule.forRoot({ notifierOptions: { env }, ...quiet, ...options })
    const app = await NestFactory.createApplicationContext(appModule([sdNotify]), { logger })
    await app.close()
    out({ warnings: logged.warn })
  },

  // watchdog.terminus without TerminusModule: the watchdog does not start, and the reason is logged.
  async 'terminus-missing' () {
    const { logger, logged } = keepingLogger()
    const sdNotify = SdNotifyModule.forRoot({
      notifierOptions: { env: { ...env, WATCHDOG_USEC: '100000' } },
      ...quiet,
      watchdog: { terminus: [() => ({ database: { status: 'up' } })] },
    })
    const app = await NestFactory.createApplicationContext(appModule([sdNotify]), { logger })
    await sleep(300) // 6 ping intervals of a running watchdog
    const running = app.get(SdNotifyService).notifier.describe().watchdog.running
    await app.close()
    out({ running, warnings: logged.warn })
  },

  // A stoppingStatus callback that throws: STOPPING=1 with the default status, the error logged.
  async 'throwing-stopping' () {
    const { logger, logged } = keepingLogger()
    const stoppingStatus = () => {
      throw new Error('stopping template broken')
    }
    const sdNotify = SdNotifyModule.forRoot({ notifierOptions: { env }, ...quiet, stoppingStatus })
    const app = await NestFactory.createApplicationContext(appModule([sdNotify]), { logger })
    await app.close('SIGTERM')
    out({ errors: logged.error })
  },

  // onReload with enableShutdownHooks() of every signal (SIGHUP included): a warning that a reload would stop it.
  async 'reload-sighup-taken' () {
    const { logger, logged } = keepingLogger()
    const sdNotify = SdNotifyModule.forRoot({ notifierOptions: { env }, onReload: () => {} })
    const app = await NestFactory.create(appModule([sdNotify]), { logger })
    app.enableShutdownHooks()
    await app.listen(0, '127.0.0.1')
    await app.close()
    out({ warnings: logged.warn })
  },

  // handleSignals(app) without SdNotifyModule: SIGTERM closes the app (hooks get the signal), then exit 0.
  async 'signals-no-module' () {
    let invalid
    try {
      handleSignals({}, { signals: ['SIGTERM', 'SIGHUP'] })
    } catch (error) {
      invalid = { code: error.code, field: error.field, message: error.message }
    }
    const { logger, logged } = keepingLogger()
    class Worker {
      onApplicationShutdown (signal) {
        console.log(JSON.stringify({ invalid, shutdown: signal, errors: logged.error }))
      }
    }
    Injectable()(Worker)
    // NestFactory.create(): the proxied application, on which a failed app.get() logs and exits the process.
    const app = await NestFactory.create(appModule([], [Worker]), { logger })
    handleSignals(app)
    process.kill(process.pid, 'SIGTERM')
    await sleep(10_000) // handleSignals exits before this ends
    out({ exited: false })
  },

  // systemdListen without SdNotifyModule and without a passed socket: app.listen() as usual, on a port (no host)
  // or on a unix socket path.
  async 'listen-no-module' () {
    const { logger, logged } = keepingLogger()
    const tcp = await NestFactory.create(appModule([], [], [HelloController]), { logger })
    const server = await systemdListen(tcp, 0)
    const port = server.address().port
    const tcpBody = await (await fetch(`http://127.0.0.1:${port}/`)).text()
    await tcp.close()
    const path = join(tmpdir(), `sdnotify-nest-${process.pid}.sock`)
    rmSync(path, { force: true })
    const unix = await NestFactory.create(appModule([], [], [HelloController]), { logger })
    await systemdListen(unix, path)
    const unixBody = await getOverUnixSocket(path)
    await unix.close()
    rmSync(path, { force: true })
    out({ tcpBody, unixBody, errors: logged.error, warnings: logged.warn })
  },
}

await scenarios[process.argv[2]](process.argv[3])
