import 'reflect-metadata'
import { NestFactory } from '@nestjs/core'
import { FastifyAdapter } from '@nestjs/platform-fastify'
import { AppModule, event } from './app.module'

async function bootstrap () {
  // PLATFORM=fastify runs the same app on @nestjs/platform-fastify.
  const app = process.env.PLATFORM === 'fastify'
    ? await NestFactory.create(AppModule, new FastifyAdapter())
    : await NestFactory.create(AppModule)
  // SIGTERM from `systemctl stop` → STOPPING=1, shutdown hooks, exit. Not SIGHUP: systemd reloads with it.
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'])
  await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1')
  event('listening')
}
void bootstrap()
