import { ConfigurableModuleBuilder } from '@nestjs/common'
import type { SdNotifyModuleOptions } from './options.js'

// forRoot(options) and forRootAsync({ useFactory, inject, imports }): the conventional Nest shape.
export const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN: SD_NOTIFY_OPTIONS, OPTIONS_TYPE, ASYNC_OPTIONS_TYPE } =
  new ConfigurableModuleBuilder<SdNotifyModuleOptions>().setClassMethodName('forRoot').build()
