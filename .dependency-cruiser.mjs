// The import graph's rules, checked by `npm run lint:cycles` (dependency-cruiser). ESLint checks
// one file at a time, so what needs the whole graph lives here: no import circles. Type-only
// imports count too: a circle of types still means two files that cannot be understood apart.
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
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: ['node_modules', '(^|/)dist/', '^contracts/(artifacts|cache|types)/'] },
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
