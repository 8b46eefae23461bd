import { Global, Module } from '@nestjs/common'
import { ConfigurableModuleClass } from './sd-notify.module-definition.js'
import { SdNotifyService } from './sd-notify.service.js'

/**
 * Import once: `SdNotifyModule.forRoot({ … })` or `SdNotifyModule.forRootAsync({ useFactory, inject })`.
 * Global: SdNotifyService can be injected anywhere.
 */
@Global()
@Module({ providers: [SdNotifyService], exports: [SdNotifyService] })
export class SdNotifyModule extends ConfigurableModuleClass {}
