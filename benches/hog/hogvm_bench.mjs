#!/usr/bin/env node
// Times PostHog's @posthog/hogvm on one bytecode file, the counterpart of Quill's
// `hog/examples/hog_bench.rs`:
//
//   node benches/hog/hogvm_bench.mjs FILE.json ITER [--globals G.json] [--rounds N]
//
// Runs the bytecode once (printing its return value as JSON), then N rounds (default 7) of ITER
// `exec` calls each, and prints the median time per execution. The VM gets Node's crypto module and
// a RegExp-based matcher, as hog/tests/hogvm/run.mjs does.
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import crypto from 'node:crypto'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const require = createRequire(resolve(here, '../../hog/tests/hogvm/package.json'))
const hogvm = require('@posthog/hogvm')
const { regex } = await import(resolve(here, '../../hog/tests/hogvm/run.mjs'))

const args = process.argv.slice(2)
const positional = []
let globals
let rounds = 7
for (let i = 0; i < args.length; i++) {
    if (args[i] === '--globals') globals = JSON.parse(readFileSync(args[++i], 'utf8'))
    else if (args[i] === '--rounds') rounds = Number(args[++i])
    else positional.push(args[i])
}
if (positional.length !== 2) {
    console.error('usage: hogvm_bench.mjs FILE.json ITER [--globals G.json] [--rounds N]')
    process.exit(2)
}
const bytecode = JSON.parse(readFileSync(positional[0], 'utf8'))
const iter = Number(positional[1])
const options = { external: { regex, crypto } }
if (globals !== undefined) options.globals = globals

const check = hogvm.exec(bytecode, options)
if (!check.finished) {
    console.error('did not finish:', check.error ?? check.asyncFunctionName)
    process.exit(1)
}
process.stdout.write(`result ${JSON.stringify(hogvm.convertHogToJS(check.result))}\n`)

let sink = 0
const perExecUs = []
for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < iter; i++) {
        if (hogvm.exec(bytecode, options).finished) sink++
    }
    perExecUs.push(Number(process.hrtime.bigint() - start) / 1e3 / iter)
}
if (sink !== rounds * iter) throw new Error('a run did not finish')
perExecUs.sort((a, b) => a - b)
console.log(`median_us ${perExecUs[Math.floor(perExecUs.length / 2)].toFixed(3)}`)
console.log(`rounds_us ${perExecUs.map((t) => t.toFixed(2)).join(' ')}`)
