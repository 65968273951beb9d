import { compile } from '../src/hardhat.ts';

export default async function setup(): Promise<void> {
  await compile();
}
