#!/usr/bin/env node
/**
 * `commons`: the command line for people — doctor, chat, train, model verify/eval/info.
 * User mistakes print one line and exit non-zero; COMMONS_DEBUG=1 shows stack traces.
 */
import { run } from '../src/cli/main.ts';

process.exitCode = await run(process.argv.slice(2));
