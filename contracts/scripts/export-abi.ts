// Compiles the contracts and rewrites the committed ABI and bytecode modules.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { compile } from '../src/hardhat.ts';
import { ABI_MODULE_PATH, BYTECODE_MODULE_PATH, renderGeneratedModules } from '../src/generated.ts';

const hre = await compile();
const { abiModule, bytecodeModule } = await renderGeneratedModules(hre);
await writeFile(ABI_MODULE_PATH, abiModule);
await writeFile(BYTECODE_MODULE_PATH, bytecodeModule);
for (const file of [ABI_MODULE_PATH, BYTECODE_MODULE_PATH]) {
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}
