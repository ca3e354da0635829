#!/usr/bin/env node
// Differential test: every hog/tests/programs/NAME.hog is compiled by Quill (`quill hog compile`)
// and the bytecode is executed by PostHog's VM (@posthog/hogvm). Two comparisons per program:
//
//   cli:  PostHog's VM with the CLI's context (no globals, default limits)
//         versus `quill hog run NAME.hog`;
//   test: PostHog's VM with the test harness's context (the globals of hog/tests/programs.rs,
//         1.5 s timeout) versus NAME.stdout, which `cargo test -p quill-hog` checks against Quill.
//
// Timing-dependent op counts in timeout messages ("Performed N ops") are masked, as
// hog/tests/programs.rs does. Programs listed in KNOWN_DIFFERENCES.md may differ; any other
// mismatch fails the run (exit 1).
//
//   node hog/tests/hogvm/differential.mjs [--quill PATH] [--verbose] [NAME...]

import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import { runHogVM } from './run.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const programsDir = resolve(here, '..', 'programs')
const repoRoot = resolve(here, '..', '..', '..')

const TEST_GLOBALS = {
    event: {
        uuid: '0190-test',
        event: '$pageview',
        distinct_id: 'user-1',
        properties: { price: 9.5, $browser: 'Firefox' },
        timestamp: '2024-03-15T13:45:30Z',
    },
    person: { id: 'p1', properties: { email: 'a@example.com' } },
    project: { id: 1, name: 'Quill' },
}
const TEST_TIMEOUT_MS = 1500

/** Names listed under "## Listed programs" in KNOWN_DIFFERENCES.md as "- `name`: reason". */
function knownDifferences() {
    const text = readFileSync(join(here, 'KNOWN_DIFFERENCES.md'), 'utf8')
    const names = new Map()
    let inList = false
    for (const line of text.split('\n')) {
        if (line.startsWith('## ')) inList = line.trim() === '## Listed programs'
        if (!inList) continue
        const m = /^- `([A-Za-z0-9_]+)`:/.exec(line)
        if (m) names.set(m[1], line)
    }
    return names
}

function mask(text) {
    return text
        .split('\n')
        .map((l) => {
            const i = l.indexOf('Performed ')
            return i >= 0 ? l.slice(0, i) : l
        })
        .join('\n')
}

function format({ lines, error }) {
    let out = ''
    for (const l of lines) out += l + '\n'
    if (error !== null) out += error + '\n'
    return out
}

function showDiff(label, expected, got) {
    const e = expected.split('\n')
    const g = got.split('\n')
    const out = [`    ${label}:`]
    for (let i = 0; i < Math.max(e.length, g.length); i++) {
        if (e[i] !== g[i]) {
            out.push(`      line ${i + 1}`)
            out.push(`        quill:   ${JSON.stringify(e[i] ?? '<missing>')}`)
            out.push(`        posthog: ${JSON.stringify(g[i] ?? '<missing>')}`)
        }
    }
    return out.join('\n')
}

function main() {
    const args = process.argv.slice(2)
    let quill = join(repoRoot, 'target', 'debug', 'quill')
    let verbose = false
    const only = []
    for (let i = 0; i < args.length; i++) {
        if (args[i] === '--quill') quill = resolve(args[++i])
        else if (args[i] === '--verbose' || args[i] === '-v') verbose = true
        else only.push(args[i].replace(/\.hog$/, ''))
    }
    if (!existsSync(quill)) {
        console.error(`${quill} not found; run \`cargo build\` first`)
        process.exit(2)
    }
    const known = knownDifferences()
    const names = readdirSync(programsDir)
        .filter((f) => f.endsWith('.hog'))
        .map((f) => f.slice(0, -4))
        .filter((n) => only.length === 0 || only.includes(n))
        .sort()
    for (const n of known.keys()) {
        if (!existsSync(join(programsDir, `${n}.hog`))) {
            console.error(`KNOWN_DIFFERENCES.md lists ${n}, which is not a program`)
            process.exit(2)
        }
    }

    let passed = 0
    let failed = 0
    let knownCount = 0
    const stale = []
    for (const name of names) {
        const hogPath = join(programsDir, `${name}.hog`)
        const expected = readFileSync(join(programsDir, `${name}.stdout`), 'utf8')
        let bytecode
        try {
            bytecode = JSON.parse(execFileSync(quill, ['hog', 'compile', hogPath], { encoding: 'utf8' }))
        } catch (e) {
            console.log(`FAIL  ${name}: quill hog compile failed: ${e.message}`)
            failed++
            continue
        }
        const quillRun = spawnSync(quill, ['hog', 'run', hogPath], { encoding: 'utf8' }).stdout
        const cli = format(runHogVM(bytecode, {}))
        const test = format(runHogVM(bytecode, { globals: TEST_GLOBALS, timeout: TEST_TIMEOUT_MS }))

        const problems = []
        if (mask(cli) !== mask(quillRun)) problems.push(showDiff('cli (quill hog run vs posthog)', quillRun, cli))
        if (mask(test) !== mask(expected)) problems.push(showDiff('test (NAME.stdout vs posthog)', expected, test))

        if (problems.length === 0) {
            if (known.has(name)) stale.push(name)
            passed++
            if (verbose) console.log(`ok    ${name}`)
        } else if (known.has(name)) {
            knownCount++
            console.log(`known ${name} (KNOWN_DIFFERENCES.md)`)
            if (verbose) console.log(problems.join('\n'))
        } else {
            failed++
            console.log(`FAIL  ${name}`)
            console.log(problems.join('\n'))
        }
    }
    for (const n of stale) {
        console.log(`note: ${n} is listed in KNOWN_DIFFERENCES.md but now matches`)
    }
    console.log(`known differences: ${knownCount} (see hog/tests/hogvm/KNOWN_DIFFERENCES.md)`)
    console.log(`hogvm differential: ${passed} passed, ${failed} failed`)
    process.exit(failed === 0 ? 0 : 1)
}

main()
