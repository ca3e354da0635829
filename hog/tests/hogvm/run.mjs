#!/usr/bin/env node
// Executes one Hog bytecode JSON file with PostHog's own VM (@posthog/hogvm) and prints what the
// program prints, one line per print() call, followed by `Type('message')` for an uncaught error
// (exit status 1), which is the shape `quill hog run` / `quill hog exec` produce.
//
//   node run.mjs FILE.json [--globals GLOBALS.json] [--timeout MS] [--memory BYTES]
//
// Regular expressions: PostHog's servers hand the VM an RE2 matcher. If the optional `re2`
// package is installed here it is used; otherwise patterns are run with JavaScript's RegExp after
// turning RE2's leading inline flags (`(?i)`, `(?ims)`, `(?-ism)`) into RegExp flags.

import { createRequire } from 'node:module'
import { readFileSync, realpathSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import crypto from 'node:crypto'

const require = createRequire(import.meta.url)
const hogvm = require('@posthog/hogvm')

let RE2 = null
try {
    RE2 = require('re2')
} catch {
    RE2 = null
}

/** Compiles an RE2-style pattern with JavaScript's RegExp. */
export function compileRegex(pattern) {
    let source = String(pattern)
    const flags = new Set()
    // Leading inline flag groups such as (?i) or (?ism) or (?-ism).
    for (;;) {
        const m = /^\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?\)/.exec(source)
        if (!m) break
        for (const f of m[1]) flags.add(f)
        for (const f of m[2] ?? '') flags.delete(f)
        source = source.slice(m[0].length)
    }
    let jsFlags = ''
    if (flags.has('i')) jsFlags += 'i'
    if (flags.has('m')) jsFlags += 'm'
    if (flags.has('s')) jsFlags += 's'
    return new RegExp(source, jsFlags)
}

export const regex = {
    match: (pattern, value) => {
        if (RE2) return new RE2(pattern).test(value)
        return compileRegex(pattern).test(value)
    },
    extract: (pattern, value) => {
        const m = RE2 ? new RE2(pattern).exec(value) : compileRegex(pattern).exec(value)
        if (!m) return ''
        return (m.length > 1 ? m[1] : m[0]) ?? ''
    },
}

/**
 * Formats an uncaught error as `Type('message')`. A Hog `throw` that nothing caught keeps its type
 * (`Error`, `RetryError`, ...). Anything else is a fault of the VM itself (a limit, a bad index, an
 * unknown global...), which PostHog's VM raises as a mix of HogVMException and plain JavaScript
 * errors; all of them print as `HogVMException('message')`, the form Quill uses for VM faults.
 */
export function formatError(e) {
    const hogThrow = e && e.name === 'UncaughtHogVMException' && e.type !== undefined && e.type !== null
    const type = hogThrow ? String(e.type) : 'HogVMException'
    const message = String(e?.message ?? e).replaceAll("'", "\\'")
    return `${type}('${message}')`
}

/**
 * Runs bytecode with @posthog/hogvm, collecting print() output. Returns
 * `{ lines, error }` where `error` is the formatted uncaught error or null.
 */
export function runHogVM(bytecode, { globals, timeout, memoryLimit } = {}) {
    const lines = []
    const original = console.log
    // print() is `console.log(...args.map(printHogStringOutput))`: the printed values joined by
    // spaces. Capture it verbatim (console.log would also apply %-format directives).
    console.log = (...args) => {
        lines.push(args.map(String).join(' '))
    }
    let error = null
    try {
        const options = { external: { regex, crypto } }
        if (globals !== undefined) options.globals = globals
        if (timeout !== undefined) options.timeout = timeout
        if (memoryLimit !== undefined) options.memoryLimit = memoryLimit
        const res = hogvm.exec(bytecode, options)
        if (res.error) {
            error = formatError(res.error)
        } else if (!res.finished) {
            error = formatError({
                name: 'HogVMException',
                message: `Unexpected async function call: ${res.asyncFunctionName}`,
            })
        }
    } catch (e) {
        error = formatError(e)
    } finally {
        console.log = original
    }
    return { lines, error }
}

function main(argv) {
    const args = argv.slice(2)
    let file = null
    const opts = {}
    for (let i = 0; i < args.length; i++) {
        const a = args[i]
        if (a === '--globals') opts.globals = JSON.parse(readFileSync(args[++i], 'utf8'))
        else if (a === '--timeout') opts.timeout = Number(args[++i])
        else if (a === '--memory') opts.memoryLimit = Number(args[++i])
        else if (file === null) file = a
        else throw new Error(`unexpected argument: ${a}`)
    }
    if (!file) {
        process.stderr.write('usage: node run.mjs FILE.json [--globals G.json] [--timeout MS] [--memory BYTES]\n')
        process.exit(2)
    }
    const bytecode = JSON.parse(readFileSync(file, 'utf8'))
    const { lines, error } = runHogVM(bytecode, opts)
    let out = ''
    for (const l of lines) out += l + '\n'
    if (error !== null) out += error + '\n'
    process.stdout.write(out, () => process.exit(error === null ? 0 : 1))
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
    main(process.argv)
}
