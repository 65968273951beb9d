// The committed ABI module (shared/chain/src/abi.ts) and bytecode module (src/bytecode.ts) must
// match a fresh compile: run `npm run abi -w contracts` after changing a contract.
import { readFile } from 'node:fs/promises';
import { expect, it } from 'vitest';
import { ABI_MODULE_PATH, BYTECODE_MODULE_PATH, renderGeneratedModules } from '../src/generated.ts';
import { createHre } from '../src/hardhat.ts';

it('committed ABI and bytecode match the compiled contracts (else: npm run abi -w contracts)', async () => {
  const { abiModule, bytecodeModule } = await renderGeneratedModules(await createHre());
  expect(await readFile(ABI_MODULE_PATH, 'utf8')).toBe(abiModule);
  expect(await readFile(BYTECODE_MODULE_PATH, 'utf8')).toBe(bytecodeModule);
});
