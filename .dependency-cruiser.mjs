// The import graph's rules, checked by `npm run lint:cycles` (dependency-cruiser). ESLint checks
// one file at a time, so what needs the whole graph lives here: no import circles, and the
// layering of shared/'s areas. Type-only imports count too: a circle of types still means two
// files that cannot be understood apart.
const chain = '^shared/(src/chain|chain/src)/';

export default {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'An import circle: break it by moving the shared piece to its own file (issue 11, item 5).',
      from: {},
      to: { circular: true },
    },
    // The layering of shared/'s areas, as each area's README states it.
    {
      name: 'chain-stands-alone',
      severity: 'error',
      comment:
        'The chain client is its own package: it needs ethers and zod, nothing else of ours.',
      from: { path: chain },
      to: { path: '^(shared|coordinator|desktop|contracts)/', pathNot: chain },
    },
    {
      name: 'engine-below-the-wire',
      severity: 'error',
      comment: 'The model engine knows nothing of rounds, privacy, the chain or the contributor.',
      from: {
        path: '^shared/src/(model|checkpoint|backend|storage|formats|decoder|chat|library)/',
      },
      to: { path: `^shared/src/(protocol|privacy|federation|cli)/|${chain}` },
    },
    {
      name: 'checkpoint-without-tfjs',
      severity: 'error',
      comment:
        'Checkpoints, update frames and model files are plain typed arrays: the coordinator folds and verifies them without an ML runtime.',
      from: { path: '^shared/src/(checkpoint|formats)/' },
      to: { path: 'node_modules/@tensorflow/' },
    },
    {
      name: 'privacy-without-transport',
      severity: 'error',
      comment:
        'DP and SecAgg+ are mechanisms: the protocol and the client carry them, not the reverse.',
      from: { path: '^shared/src/privacy/' },
      to: { path: `^shared/src/(protocol|federation|cli)/|${chain}` },
    },
    {
      name: 'protocol-not-its-speakers',
      severity: 'error',
      comment: 'The wire protocol is shared by both ends: it may not depend on either.',
      from: { path: '^shared/src/protocol/' },
      to: { path: '^shared/src/(federation|cli|model)/|^(coordinator|desktop)/' },
    },
    {
      name: 'cli-is-a-program',
      severity: 'error',
      comment: 'The commons command is not a library: only bin/commons.ts and its tests start it.',
      from: { pathNot: '^shared/(src/cli|bin|test)/' },
      to: { path: '^shared/src/cli/' },
    },
    {
      name: 'shared-below-its-users',
      severity: 'error',
      comment: 'shared/ is what the other packages agree on: it never imports them.',
      from: { path: '^shared/src/' },
      to: { path: '^(coordinator|desktop|contracts)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: ['^[a-z]+/dist/', '^contracts/(artifacts|cache|types)/'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'node', 'default', 'types'],
      extensions: ['.ts', '.tsx', '.js', '.mjs'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
