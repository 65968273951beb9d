// The packages' public entrances (issue 11, item 6): every entrance a package.json exports loads
// in Node as it is (ESM linking checks every re-exported name), and the lint rule that keeps
// other packages out of deep paths refuses them and lets the entrances through.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';
import { deepImportRule } from '../eslint.config.js';

const root = fileURLToPath(new URL('..', import.meta.url));

interface Manifest {
  name: string;
  workspaces?: string[];
  exports?: Record<string, string>;
}
const manifest = (dir: string): Manifest =>
  JSON.parse(readFileSync(`${root}/${dir}/package.json`, 'utf8')) as Manifest;

/** Every entrance the workspace packages export by name (patterns such as './*' are not ones). */
function entrances(): string[] {
  const names: string[] = [];
  for (const dir of manifest('.').workspaces ?? []) {
    const { name, exports = {} } = manifest(dir);
    for (const key of Object.keys(exports)) {
      if (key.includes('*')) continue;
      names.push(key === '.' ? name : `${name}/${key.slice(2)}`);
    }
  }
  return names;
}

describe('public entrances', () => {
  it('each one loads in Node and exports something', () => {
    const wanted = entrances();
    expect(wanted).toEqual(
      expect.arrayContaining([
        '@commons/shared/engine',
        '@commons/shared/protocol',
        '@commons/shared/privacy',
        '@commons/shared/contributor',
        '@commons/shared/errors',
        '@commons/coordinator',
        '@commons/coordinator/lab',
        '@commons/desktop/demo',
        '@commons/contracts',
      ]),
    );
    // A separate Node process: Node's own resolution of the exports maps and ESM linking, which
    // fails on a re-export of a name that does not exist (Vitest's transform would not).
    const script = `const out = {};
      for (const name of ${JSON.stringify(wanted)}) out[name] = Object.keys(await import(name)).length;
      console.log(JSON.stringify(out));`;
    const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: `${root}/test`,
      encoding: 'utf8',
    });
    const counts = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, number>;
    for (const name of wanted) expect(counts[name], name).toBeGreaterThan(0);
  });
});

describe('the deep-import lint rule', () => {
  const eslint = new ESLint({
    cwd: root,
    overrideConfigFile: true,
    overrideConfig: [
      {
        files: ['**/*.ts'],
        languageOptions: { parser: tseslint.parser },
        rules: { 'no-restricted-imports': deepImportRule },
      },
    ],
  });
  const lint = async (specifier: string): Promise<string[]> => {
    const [result] = await eslint.lintText(`import { x } from '${specifier}';\nexport { x };\n`, {
      filePath: `${root}/test/probe.ts`,
    });
    return result!.messages.map((m) => m.message);
  };

  it.each([
    '@commons/shared/model/config',
    '@commons/shared/chain/client',
    '@commons/shared/privacy/dp/ledger',
    '@commons/shared',
    '@commons/chain/src/policy',
    '@commons/coordinator/rounds/engine',
    '@commons/coordinator/lab/simulation/roles',
    '@commons/desktop/src/demo/demo',
    '../desktop/src/demo/demo.ts',
    '../shared/src/model/config.ts',
  ])('refuses %s, naming the entrances', async (specifier) => {
    const messages = await lint(specifier);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('@commons/shared/engine');
  });

  it.each([
    '@commons/shared/engine',
    '@commons/shared/protocol',
    '@commons/shared/privacy',
    '@commons/shared/contributor',
    '@commons/shared/errors',
    '@commons/shared/bench',
    '@commons/chain',
    '@commons/coordinator',
    '@commons/coordinator/lab',
    '@commons/desktop/demo',
    '@commons/contracts',
    './fixture.ts',
  ])('lets %s through', async (specifier) => {
    expect(await lint(specifier)).toEqual([]);
  });
});
