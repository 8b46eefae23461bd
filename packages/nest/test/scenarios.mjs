// Nest scenarios, run by test/module.test.ts in a plain `node` process: tap's TypeScript loader (a ts-node
// fork) mis-resolves NestJS 12's package "exports" patterns. Each prints one JSON line of what it saw;
// notifications go to the fake manager at $FAKE (the test reads them there).
import 'reflect-metadata'
import { Controller, Get, Inject, Injectable, Module } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { FastifyAdapter } from '@nestjs/platform-fastify'
import { HealthIndicatorService, TerminusModule } from '@nestjs/terminus'
import { Test } from '@nestjs/testing'
import { SdNotifyModule, SdNotifyService } from '@sdnotify/nest'

const env = { NOTIFY_SOCKET: process.env.FAKE }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const out = (result) => console.log(JSON.stringify(result))

function appModule(imports, providers = [], controllers = []) {
  class AppModule {}
  Module({ imports, providers, controllers })(AppModule)
  return AppModule
}

class HelloController {
  hello() {
    return 'hello'
  }
}
Controller()(HelloController)
Get()(HelloController.prototype, 'hello', Object.getOwnPropertyDescriptor(HelloController.prototype, 'hello'))

const scenarios = {
  // READY only after app.listen() binds, on either platform; STOPPING on close.
  async http(platform) {
    const AppModule = appModule([SdNotifyModule.forRoot({ notifierOptions: { env } })], [], [HelloController])
    const app = platform === 'fastify' ? await NestFactory.create(AppModule, new FastifyAdapter(), { logger: false }) : await NestFactory.create(AppModule, { logger: false })
    await app.init()
    await sleep(200)
    const marker = await app.get(SdNotifyService).status('initialised, not listening') // everything before this came from init
    await app.listen(0, '127.0.0.1')
    const port = app.getHttpServer().address().port
    const body = await (await fetch(`http://127.0.0.1:${port}/`)).text()
    await sleep(100)
    await app.close()
    out({ port, body, marker })
  },

  async context() {
    const app = await NestFactory.createApplicationContext(appModule([SdNotifyModule.forRoot({ notifierOptions: { env }, readyStatus: () => 'Worker ready' })]), { logger: false })
    await sleep(100)
    await app.close()
    out({})
  },

  async async() {
    const CONFIG = Symbol('config')
    class ConfigModule {}
    Module({ providers: [{ provide: CONFIG, useValue: { socket: env.NOTIFY_SOCKET } }], exports: [CONFIG] })(ConfigModule)
    class Consumer {
      constructor(sd) {
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
          useFactory: (config) => ({ notifierOptions: { env: { NOTIFY_SOCKET: config.socket } }, readyOn: 'bootstrap' }),
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

  async extend() {
    class Migrations {
      async onModuleInit() {
        await sleep(450)
      }
    }
    Injectable()(Migrations)
    const app = await NestFactory.createApplicationContext(
      appModule([SdNotifyModule.forRoot({ notifierOptions: { env }, extendStartTimeout: { intervalMs: 100, extendMs: 1000 } })], [Migrations]),
      { logger: false },
    )
    await sleep(300)
    await app.close()
    out({})
  },

  async terminus() {
    let up = true
    class DbHealth {
      constructor(health) {
        this.health = health
      }
      check() {
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
      { logger: false },
    )
    await sleep(400)
    up = false
    await sleep(600)
    await app.close()
    out({ unhealthy })
  },

  async invalid() {
    const errors = []
    for (const options of [{ readyOn: 'later' }, { extendStartTimeout: { intervalMs: 5000, extendMs: 1000 } }]) {
      try {
        await Test.createTestingModule({ imports: [SdNotifyModule.forRoot(options)] }).compile()
        errors.push(null)
      } catch (error) {
        errors.push({ code: error.code, field: error.field, message: error.message })
      }
    }
    out({ errors })
  },

  // No NOTIFY_SOCKET when FAKE is unset: a plain testing module; and the missing-shutdown-hooks warning.
  async testing() {
    const warnings = []
    const moduleRef = await Test.createTestingModule({ imports: [SdNotifyModule.forRoot(process.env.FAKE ? { notifierOptions: { env } } : {})] }).compile()
    moduleRef.useLogger({ log() {}, error() {}, warn: (message) => warnings.push(String(message)) })
    const app = await moduleRef.init()
    const ready = await app.get(SdNotifyService).notifier.ready()
    await app.close()
    const native = process.report.getReport().sharedObjects.filter((so) => /koffi|unix_dgram/.test(so))
    out({ ready, native, warned: warnings.some((m) => m.includes('enableShutdownHooks')) })
  },
}

await scenarios[process.argv[2]](process.argv[3])
