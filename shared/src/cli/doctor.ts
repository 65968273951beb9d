import { availableParallelism, cpus, totalmem } from 'node:os';
import { selectBackend } from '../backend/select.ts';
import { parse } from './options.ts';

const mib = (bytes: number | undefined) =>
  bytes === undefined ? '?' : `${Math.round(bytes / 2 ** 20).toLocaleString('en-US')} MiB`;

export async function doctor(args: string[]): Promise<number> {
  const { values } = parse(args, { json: { type: 'boolean', default: false } });
  const report = await selectBackend();
  const machine = {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  };
  if (values.json) {
    console.log(JSON.stringify({ ...report, machine }, null, 2));
    return 0;
  }
  const lines = [
    `backend      ${report.backend} (tfjs ${report.tfjsVersion}, registered as "${report.tfjsBackend}")`,
    `simd         ${report.simd === null ? 'n/a' : report.simd ? 'yes' : 'no'}`,
    `threads      ${report.threads || 'n/a'}${report.backend === 'wasm' ? ' (tfjs disables wasm multithreading under Node; training uses worker threads instead)' : ''}`,
    `gpu          ${report.gpu ? `${report.gpu.name}${report.gpu.memoryMiB ? `, ${report.gpu.memoryMiB} MiB` : ''}` : 'none in use'}`,
    ...(report.gpu?.adapter
      ? [
          `adapter      ${report.gpu.adapter.vendor} ${report.gpu.adapter.architecture} ${report.gpu.adapter.device}`.trimEnd(),
          `limits       buffer ${mib(report.gpu.maxBufferBytes)}, shader binding ${mib(report.gpu.maxBindingBytes)} (a tensor past these runs on the CPU)`,
        ]
      : []),
    `machine      ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}`,
  ];
  if (report.skipped.length > 0) {
    lines.push('not used:');
    for (const s of report.skipped) lines.push(`  ${s.backend.padEnd(15)} ${s.reason}`);
  }
  console.log(lines.join('\n'));
  return 0;
}
