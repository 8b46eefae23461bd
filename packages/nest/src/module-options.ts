import type { INestApplicationContext } from '@nestjs/common'
import { ModuleRef } from '@nestjs/core'
import type { SdNotifyModuleOptions } from './options.js'
import { SD_NOTIFY_OPTIONS } from './sd-notify.module-definition.js'

/**
 * SdNotifyModule's options when the application imports it, else undefined. Looked up through a ModuleRef, which
 * throws for a missing provider: the application NestFactory.create() returns is a proxy whose failed app.get()
 * logs the error and exits the process (Nest's ExceptionsZone, unless abortOnError is false) instead of throwing.
 * ModuleRef must be the application's own class: @nestjs/core is a peer dependency, so there is one copy.
 */
export function moduleOptions (app: INestApplicationContext): SdNotifyModuleOptions | undefined {
  try {
    const moduleRef = app.get(ModuleRef, { strict: false })
    return moduleRef.get<SdNotifyModuleOptions>(SD_NOTIFY_OPTIONS, { strict: false })
  } catch {
    return undefined // SdNotifyModule not imported
  }
}
