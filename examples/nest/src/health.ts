import { Injectable, Module } from '@nestjs/common'
import { HealthIndicatorService, TerminusModule } from '@nestjs/terminus'

/** A stand-in for a database check. DB_DOWN_AFTER_MS=N makes it fail after N ms (to see the watchdog act). */
@Injectable()
export class DatabaseHealth {
  private readonly downAt = process.env.DB_DOWN_AFTER_MS ? Date.now() + Number(process.env.DB_DOWN_AFTER_MS) : Infinity

  constructor (private readonly health: HealthIndicatorService) {}

  check () {
    const indicator = this.health.check('database')
    return Date.now() < this.downAt ? indicator.up() : indicator.down({ message: 'connection refused' })
  }
}

@Module({ imports: [TerminusModule], providers: [DatabaseHealth], exports: [DatabaseHealth] })
export class HealthModule {}
