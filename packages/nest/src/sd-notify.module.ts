import { Global, Module } from '@nestjs/common'
import { ConfigurableModuleClass } from './sd-notify.module-definition.js'
import { SdNotifyService } from './sd-notify.service.js'

/**
 * Import once: `SdNotifyModule.forRoot({ … })` or `SdNotifyModule.forRootAsync({ useFactory, inject })`.
 * Global: SdNotifyService can be injected anywhere.
 */
export class SdNotifyModule extends ConfigurableModuleClass {}

Global()(SdNotifyModule)
Module({ providers: [SdNotifyService], exports: [SdNotifyService] })(SdNotifyModule)
