import { appendFileSync } from 'node:fs'
import { Controller, Get, Injectable, Module, OnApplicationShutdown, OnModuleInit } from '@nestjs/common'
import { TerminusModule } from '@nestjs/terminus'
import { SdNotifyModule, SdNotifyService } from '@sdnotify/nest'
import { DatabaseHealth, HealthModule } from './health'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** With EVENT_LOG=file, lifecycle events are appended there as JSON lines (the tests read them). */
export const event = (name: string, data: object = {}) =>
  process.env.EVENT_LOG && appendFileSync(process.env.EVENT_LOG,
    JSON.stringify({ event: name, pid: process.pid, ...data }) + '\n')

/** Slow start-up work, such as migrations: MIGRATION_MS=N takes N ms. */
@Injectable()
class Migrations implements OnModuleInit {
  constructor (private readonly sdNotify: SdNotifyService) {}

  async onModuleInit () {
    const ms = Number(process.env.MIGRATION_MS ?? 0)
    if (!ms) return
    await this.sdNotify.status(`Running migrations (${ms} ms)`)
    await sleep(ms)
    event('migrated')
  }
}

@Injectable()
class Shutdown implements OnApplicationShutdown {
  onApplicationShutdown (signal?: string) {
    event('onApplicationShutdown', { signal })
  }
}

@Controller()
class AppController {
  @Get()
  hello () {
    return { hello: 'world' }
  }

  @Get('slow')
  async slow () {
    event('slow request started')
    await sleep(2000)
    return 'slow done'
  }

  /** Blocks the event loop for 5 s: the watchdog stops pinging and systemd restarts the service. */
  @Get('block')
  block () {
    event('blocking')
    const end = Date.now() + 5000
    while (Date.now() < end) {
      /* wedged */
    }
    return 'unblocked'
  }
}

@Module({
  imports: [
    TerminusModule,
    SdNotifyModule.forRootAsync({
      imports: [HealthModule],
      inject: [DatabaseHealth],
      useFactory: (database: DatabaseHealth) => ({
        // Keep TimeoutStartSec tight: migrations ask for more time while they run (EXTEND_START=0 to turn off).
        extendStartTimeout: process.env.EXTEND_START === '0' ? false : { intervalMs: 1000, extendMs: 3000 },
        // The watchdog pings only while the event loop is responsive and the terminus checks pass.
        watchdog: { terminus: [() => database.check()] },
      }),
    }),
  ],
  controllers: [AppController],
  providers: [Migrations, Shutdown],
})
export class AppModule {}
