// Types for eslint.config.js, which test/entrances.test.ts imports to check the deep-import rule.
import type { Linter } from 'eslint';

export declare const deepImportRule: Linter.RuleEntry;
declare const config: Linter.Config[];
export default config;
