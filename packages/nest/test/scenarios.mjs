// Nest scenarios, run by test/module.test.ts in a plain `node` process: tap's TypeScript loader (a ts-node
// fork) mis-resolves NestJS 12's package "exports" patterns. Each prints one JSON line of what it saw;
// notifications go to the fake manager at $FAKE (the test reads them there).
import 'reflect-metadata'
import { readFileSync } from 'node:fs'
import https from 'node:https'
import { Controller, Get, Inject, Injectable, Module, Query } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { FastifyAdapter } from '@nestjs/platform-fastify'
import { HealthIndicatorService, TerminusModule } from '@nestjs/terminus'
import { Test } from '@nestjs/testing'
import { SdNotifyModule, SdNotifyService } from '@sdnotify/nest'
import { appModule, env, HelloController, out, sleep } from './scenario-app.mjs'

// GET /slow?ms=N answers 'slow done' after N ms; GET /hang never answers. `started` resolves on a request.
let started = () => {}
const requestStarted = () => new Promise((resolve) => (started = resolve))
class SlowController {
  async slow (ms) {
    started()
    await sleep(Number(ms))
    return 'slow done'
  }

  hang () {
    started()
    return new Promise(() => {})
  }
}
Controller()(SlowController)
Query('ms')(SlowController.prototype, 'slow', 0)
Get('slow')(SlowController.prototype, 'slow', Object.getOwnPropertyDescriptor(SlowController.prototype, 'slow'))
Get('hang')(SlowController.prototype, 'hang', Object.getOwnPropertyDescriptor(SlowController.prototype, 'hang'))

/** A logger that keeps what it is given, for scenarios that check what was logged. */
function keepingLogger () {
  const logged = { error: [], warn: [] }
  const keep = (level) => (message) => logged[level].push(String(message))
  const logger = { log () {}, debug () {}, verbose () {}, error: keep('error'), warn: keep('warn') }
  return { logger, logged }
}

/** GET over HTTPS (self-signed: not verified) through a keep-alive agent: { status, body } or { error: code }. */
function httpsGet (port, path, agent) {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path, agent, rejectUnauthorized: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode, body, connection: res.headers.connection }))
      res.on('error', (error) => resolve({ error: error.code ?? error.message }))
    })
    req.on('error', (error) => resolve({ error: error.code ?? error.message }))
  })
}

const scenarios = {
  // READY only after app.listen() binds, on either platform; STOPPING on close.
  async http (platform) {
    const AppModule = appModule([SdNotifyModule.forRoot({ notifierOptions: { env } })], [], [HelloController])
    const app = platform === 'fastify'
      ? await NestFactory.create(AppModule, new FastifyAdapter(), { logger: false })
      : await NestFactory.create(AppModule, { logger: false })
    await app.init()
    await sleep(200)
    // everything before this came from init
    const marker = await app.get(SdNotifyService).status('initialised, not listening')
    await app.listen(0, '127.0.0.1')
    const port = app.getHttpServer().address().port
    const body = await (await fetch(`http://127.0.0.1:${port}/`)).text()
    await sleep(100)
    await app.close()
    out({ port, body, marker })
  },

  async context () {
    const sdNotify = SdNotifyModule.forRoot({ notifierOptions: { env }, readyStatus: () => 'Worker ready' })
    const app = await NestFactory.createApplicationContext(appModule([sdNotify]), { logger: false })
    await sleep(100)
    await app.close()
    out({})
  },

  async async () {
    const CONFIG = Symbol('config')
    class ConfigModule {}
    Module({
      providers: [{ provide: CONFIG, useValue: { socket: env.NOTIFY_SOCKET } }],
      exports: [CONFIG],
    })(ConfigModule)
    class Consumer {
      constructor (sd) {
        this.sd = sd
      }
    }
    Injectable()(Consumer)
    Inject(SdNotifyService)(Consumer, undefined, 0)
    const moduleRef = await Test.createTestingModule({
      imports: [
        SdNotifyModule.forRootAsync({
          imports: [ConfigModule],
          inject: [CONFIG],
          useFactory: (config) => ({
            notifierOptions: { env: { NOTIFY_SOCKET: config.socket } },
            readyOn: 'bootstrap',
          }),
        }),
      ],
      providers: [Consumer],
    }).compile()
    const app = await moduleRef.init()
    const injected = app.get(Consumer).sd instanceof SdNotifyService
    const sent = await app.get(Consumer).sd.errno(5, 'disk')
    await app.close()
    out({ injected, sent })
  },

  async extend () {
    class Migrations {
      async onModuleInit () {
        await sleep(450)
      }
    }
    Injectable()(Migrations)
    const app = await NestFactory.createApplicationContext(
      appModule(
        [SdNotifyModule.forRoot({ notifierOptions: { env }, extendStartTimeout: { intervalMs: 100, extendMs: 1000 } })],
        [Migrations]
      ),
      { logger: false }
    )
    await sleep(300)
    await app.close()
    out({})
  },

  async terminus () {
    let up = true
    class DbHealth {
      constructor (health) {
        this.health = health
      }

      check () {
        const indicator = this.health.check('database')
        return up ? indicator.up() : indicator.down({ message: 'refused' })
      }
    }
    Injectable()(DbHealth)
    Inject(HealthIndicatorService)(DbHealth, undefined, 0)
    class HealthModule {}
    Module({ imports: [TerminusModule], providers: [DbHealth], exports: [DbHealth] })(HealthModule)
    const unhealthy = []
    const app = await NestFactory.createApplicationContext(
      appModule([
        TerminusModule,
        SdNotifyModule.forRootAsync({
          imports: [HealthModule],
          inject: [DbHealth],
          useFactory: (db) => ({
            notifierOptions: { env: { ...env, WATCHDOG_USEC: '200000' } },
            watchdog: { terminus: [() => db.check()], onUnhealthy: (reason) => unhealthy.push(reason) },
          }),
        }),
      ]),
      { logger: false }
    )
    await sleep(400)
    up = false
    await sleep(600)
    await app.close()
    out({ unhealthy })
  },

  async invalid () {
    const errors = []
    const cases = [
      { readyOn: 'later' },
      { extendStartTimeout: { intervalMs: 5000, extendMs: 1000 } },
      { extendStartTimeout: { maxMs: -1 } },
      { handleSignals: true },
      { readyStatus: 42 },
      { shutdownTimeoutMs: 0 },
    ]
    for (const options of cases) {
      try {
        await Test.createTestingModule({ imports: [SdNotifyModule.forRoot(options)] }).compile()
        errors.push(null)
      } catch (error) {
        errors.push({ code: error.code, field: error.field, message: error.message })
      }
    }
    out({ errors })
  },

  // HTTPS (httpsOptions): a request in flight when app.close() begins completes on its keep-alive connection.
  async https () {
    const { TLS_KEY, TLS_CERT } = process.env
    const AppModule = appModule([SdNotifyModule.forRoot({ notifierOptions: { env } })], [], [SlowController])
    const httpsOptions = { key: readFileSync(TLS_KEY), cert: readFileSync(TLS_CERT) }
    const app = await NestFactory.create(AppModule, { logger: false, httpsOptions })
    await app.listen(0, '127.0.0.1')
    const port = app.getHttpServer().address().port
    const agent = new https.Agent({ keepAlive: true })
    const running = requestStarted()
    const response = httpsGet(port, '/slow?ms=300', agent)
    await running
    await app.close()
    agent.destroy()
    out({ port, response: await response })
  },

  // shutdownTimeoutMs: a request that never ends has its connection closed after it, and app.close() ends.
  async timeout () {
    const sdNotify = SdNotifyModule.forRoot({ notifierOptions: { env }, shutdownTimeoutMs: 200 })
    const AppModule = appModule([sdNotify], [], [SlowController])
    const app = await NestFactory.create(AppModule, { logger: false })
    await app.listen(0, '127.0.0.1')
    const port = app.getHttpServer().address().port
    const running = requestStarted()
    const response = fetch(`http://127.0.0.1:${port}/hang`).then(
      (res) => ({ status: res.status }),
      (error) => ({ error: error.cause?.code ?? error.message })
    )
    await running
    await app.close()
    out({ closed: true, response: await response })
  },

  // A readyStatus callback that throws: READY=1 with the default status, the error logged, the app lives.
  async 'throwing-ready' () {
    const { logger, logged } = keepingLogger()
    const readyStatus = () => {
      throw new Error('status template broken')
    }
    const sdNotify = SdNotifyModule.forRoot({ notifierOptions: { env }, readyStatus })
    const AppModule = appModule([sdNotify], [], [HelloController])
    const app = await NestFactory.create(AppModule, { logger })
    await app.listen(0, '127.0.0.1')
    const port = app.getHttpServer().address().port
    await sleep(100)
    const body = await (await fetch(`http://127.0.0.1:${port}/`)).text()
    await app.close()
    out({ port, body, errors: logged.error })
  },

  // readyStatus gets ReadyInfo; a string stoppingStatus; both made single lines.
  async statuses () {
    const readyStatus = ({ addresses }) => `up on ${addresses.length}\naddress`
    const sdNotify = SdNotifyModule.forRoot({ notifierOptions: { env }, readyStatus, stoppingStatus: 'Bye\tnow' })
    const AppModule = appModule([sdNotify])
    const app = await NestFactory.create(AppModule, { logger: false })
    await app.listen(0, '127.0.0.1')
    await sleep(100)
    await app.close()
    out({})
  },

  // A listen error: systemd is told (once), then app.listen() rejects with it, as without the module.
  async 'listen-error' (port) {
    const AppModule = appModule([SdNotifyModule.forRoot({ notifierOptions: { env } })])
    const app = await NestFactory.create(AppModule, { logger: false })
    try {
      await app.listen(Number(port), '127.0.0.1')
      out({ listened: true })
    } catch (error) {
      out({ code: error.code })
    }
  },

  // After listening, a server error is the app's: with no listener of its own, emit throws.
  async 'server-error' () {
    const AppModule = appModule([SdNotifyModule.forRoot({ notifierOptions: { env } })])
    const app = await NestFactory.create(AppModule, { logger: false })
    await app.listen(0, '127.0.0.1')
    const server = app.getHttpServer()
    const listeners = server.listenerCount('error')
    let thrown
    try {
      server.emit('error', Object.assign(new Error('accept failed'), { code: 'EMFILE' }))
    } catch (error) {
      thrown = error.code
    }
    await app.close()
    out({ listeners, thrown })
  },

  // extendStartTimeout.maxMs: no extension reaches past maxMs after construction.
  async 'extend-max' () {
    class Migrations {
      async onModuleInit () {
        await sleep(600)
      }
    }
    Injectable()(Migrations)
    const extendStartTimeout = { intervalMs: 100, extendMs: 1000, maxMs: 250 }
    const { logger, logged } = keepingLogger()
    const sdNotify = SdNotifyModule.forRoot({ notifierOptions: { env }, extendStartTimeout })
    const app = await NestFactory.createApplicationContext(appModule([sdNotify], [Migrations]), { logger })
    await app.close()
    out({ warnings: logged.warn })
  },

  // onReload: SIGHUP under systemd only; a failing handler still gets READY=1, with a single-line status.
  async reload (mode) {
    const before = process.listenerCount('SIGHUP')
    let runs = 0
    const onReload = async () => {
      runs++
      if (mode === 'fail') throw new Error('bad config\n  at line 3')
    }
    const { logger, logged } = keepingLogger()
    const notifierOptions = process.env.FAKE ? { env } : { env: {} }
    const AppModule = appModule([SdNotifyModule.forRoot({ notifierOptions, onReload })])
    const app = await NestFactory.create(AppModule, { logger })
    await app.listen(0, '127.0.0.1')
    const installed = process.listenerCount('SIGHUP') - before
    if (installed > 0) {
      process.kill(process.pid, 'SIGHUP')
      // eslint-disable-next-line no-unmodified-loop-condition -- onReload counts the runs during the sleep
      while (runs === 0) await sleep(10)
      await sleep(100)
    }
    await app.close()
    out({ installed, runs, after: process.listenerCount('SIGHUP') - before, errors: logged.error })
  },

  // No NOTIFY_SOCKET when FAKE is unset: a plain testing module; and the missing-shutdown-hooks warning.
  async testing () {
    const warnings = []
    const sdNotify = SdNotifyModule.forRoot(process.env.FAKE ? { notifierOptions: { env } } : {})
    const moduleRef = await Test.createTestingModule({ imports: [sdNotify] }).compile()
    moduleRef.useLogger({ log () {}, error () {}, warn: (message) => warnings.push(String(message)) })
    const app = await moduleRef.init()
    const ready = await app.get(SdNotifyService).notifier.ready()
    await app.close()
    const native = process.report.getReport().sharedObjects.filter((so) => /koffi|unix_dgram/.test(so))
    out({ ready, native, warned: warnings.some((m) => m.includes('enableShutdownHooks')) })
  },
}

await scenarios[process.argv[2]](process.argv[3])
