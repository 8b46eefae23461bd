// Argument parsing for the `sdnotify` command: node:util parseArgs, strict, with errors that name the argument.
import { parseArgs, type ParseArgsConfig } from 'node:util'

/** Bad command-line input: printed with the command's name, exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError'
}

export type Options = NonNullable<ParseArgsConfig['options']>
/** What parseArgs gives for an option. */
export type OptionValue = string | boolean | Array<string | boolean> | undefined

export function parse (
  command: string,
  args: string[],
  options: Options
): { values: Record<string, OptionValue>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true })
    return { values, positionals }
  } catch (error) {
    // parseArgs' own messages name the option: "Unknown option '--nmae'", "Option '--name <value>' argument missing".
    throw new UsageError(`${command}: ${(error as Error).message}`)
  }
}

/** The value of a string option, checked against `rule`; `expected` says what is allowed. */
export function checked (
  command: string,
  name: string,
  value: OptionValue,
  rule: RegExp,
  expected: string
): string | undefined {
  if (value === undefined) return undefined
  const text = String(value)
  if (!rule.test(text)) throw new UsageError(`${command}: --${name} ${JSON.stringify(text)} is not valid: ${expected}`)
  return text
}
