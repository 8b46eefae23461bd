#!/usr/bin/env node
// The `sdnotify` command: `sdnotify doctor` and `sdnotify unit` (see README "Command line").
import { readFileSync } from 'node:fs'
import { UsageError } from './args.js'
import { doctor, DOCTOR_HELP, renderDoctor } from './doctor.js'
import { renderUnit, UNIT_HELP, unitSettings } from './unit.js'

const HELP = `Usage: sdnotify <command> [options]

Commands:
  doctor    which transport a service will use and why, and what its unit file lacks
  unit      print a commented unit file for a Node.js service

sdnotify <command> --help describes each. sdnotify --version prints the version.`

/** Exit statuses: 0 done, 1 failed, 2 bad arguments. */
async function main (argv: string[]): Promise<number> {
  const [command, ...args] = argv
  if (command === undefined) {
    process.stderr.write(`sdnotify: no command given\n\n${HELP}\n`)
    return 2
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${HELP}\n`)
    return 0
  }
  if (command === '--version' || command === '-v') {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
    process.stdout.write(`${pkg.version}\n`)
    return 0
  }
  if (command === 'doctor') {
    const result = await doctor(args)
    if (result === 'help') process.stdout.write(`${DOCTOR_HELP}\n`)
    else process.stdout.write(result.json ? `${JSON.stringify(result.report, null, 2)}\n` : renderDoctor(result.report))
    return 0
  }
  if (command === 'unit') {
    const settings = unitSettings(args)
    process.stdout.write(settings === 'help' ? `${UNIT_HELP}\n` : renderUnit(settings))
    return 0
  }
  throw new UsageError(
    `sdnotify: unknown command ${JSON.stringify(command)} (commands: doctor, unit; see sdnotify --help)`
  )
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\n`)
      process.exitCode = 2
    } else {
      process.stderr.write(`${(error as Error)?.message ?? String(error)}\n`)
      process.exitCode = 1
    }
  }
)
