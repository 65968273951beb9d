import { fileURLToPath } from 'node:url';

/** Absolute path of the contracts package (the Hardhat project root). */
export const contractsRootDir = fileURLToPath(new URL('..', import.meta.url));
