// What the plain-JS Nest scenarios (scenarios.mjs, service-scenarios.mjs) share: the fake manager's environment,
// JSON output, and an app module with one controller. Decorators are applied as functions: plain JavaScript on
// Node has no decorator syntax.
import { Controller, Get, Module } from '@nestjs/common'

export const env = { NOTIFY_SOCKET: process.env.FAKE }
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
export const out = (result) => console.log(JSON.stringify(result))

export function appModule (imports, providers = [], controllers = []) {
  class AppModule {}
  Module({ imports, providers, controllers })(AppModule)
  return AppModule
}

export class HelloController {
  hello () {
    return 'hello'
  }
}
Controller()(HelloController)
Get()(HelloController.prototype, 'hello', Object.getOwnPropertyDescriptor(HelloController.prototype, 'hello'))
