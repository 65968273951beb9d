import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { HostTensor } from '../checkpoint/tensors.ts';
import { ModelFormatError } from './errors.ts';
import { SafetensorsFile, writeSafetensorsFile, type SafetensorsDtype } from './safetensors.ts';

/**
 * A Hugging Face model folder as the hub serves it: config.json, generation_config.json,
 * and the weights as one model.safetensors or as shards listed by
 * model.safetensors.index.json ({"weight_map": {tensor: shard file}}). Opening reads the
 * JSON files and the safetensors headers only; tensors are read when asked for.
 */
export interface HfFolder {
  dir: string;
  /** config.json, parsed but not interpreted (the model family reads its own fields). */
  config: unknown;
  /** Token ids that end a reply: generation_config.json's eos_token_id (one or several),
   * else config.json's. */
  eosTokenIds: number[];
  bosTokenId: number | null;
  /** Every tensor the folder holds, by name. */
  tensorNames: string[];
  read(name: string): Promise<HostTensor>;
  close(): Promise<void>;
}

export async function openHfFolder(dir: string): Promise<HfFolder> {
  const config = await readJson(path.join(dir, 'config.json'), true);
  const generation = (await readJson(path.join(dir, 'generation_config.json'), false)) ?? {};
  const index = (await readJson(path.join(dir, 'model.safetensors.index.json'), false)) as {
    weight_map?: unknown;
  } | null;
  const files = new Map<string, SafetensorsFile>();
  const owner = new Map<string, SafetensorsFile>();
  try {
    if (index === null) {
      const file = await openShard(dir, 'model.safetensors');
      files.set('model.safetensors', file);
      for (const name of file.entries.keys()) owner.set(name, file);
    } else {
      const map = index.weight_map;
      if (typeof map !== 'object' || map === null) {
        throw new ModelFormatError(
          'MALFORMED_HEADER',
          `${dir}/model.safetensors.index.json has no weight_map`,
        );
      }
      for (const [tensor, shard] of Object.entries(map)) {
        // A shard name is a file in this folder, never a path out of it.
        if (
          typeof shard !== 'string' ||
          shard !== path.basename(shard) ||
          !shard.endsWith('.safetensors')
        ) {
          throw new ModelFormatError(
            'MALFORMED_HEADER',
            `${dir}/model.safetensors.index.json maps "${tensor}" to ${JSON.stringify(shard)}, not a shard file`,
          );
        }
        let file = files.get(shard);
        if (file === undefined) {
          file = await openShard(dir, shard);
          files.set(shard, file);
        }
        if (!file.entries.has(tensor)) {
          throw new ModelFormatError(
            'MISSING_TENSOR',
            `${shard} lacks "${tensor}" that the index maps to it`,
          );
        }
        owner.set(tensor, file);
      }
    }
  } catch (error) {
    await Promise.all([...files.values()].map((f) => f.close()));
    throw error;
  }
  const cfg = config as Record<string, unknown>;
  const gen = generation as Record<string, unknown>;
  return {
    dir,
    config,
    eosTokenIds: tokenIds(gen.eos_token_id ?? cfg.eos_token_id),
    bosTokenId: tokenIds(gen.bos_token_id ?? cfg.bos_token_id)[0] ?? null,
    tensorNames: [...owner.keys()],
    read: async (name) => {
      const file = owner.get(name);
      if (file === undefined) {
        throw new ModelFormatError('MISSING_TENSOR', `${dir} holds no tensor "${name}"`);
      }
      return file.read(name);
    },
    close: async () => {
      await Promise.all([...files.values()].map((f) => f.close()));
    },
  };
}

async function openShard(dir: string, name: string): Promise<SafetensorsFile> {
  try {
    return await SafetensorsFile.open(path.join(dir, name));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ModelFormatError('MISSING_TENSOR', `${dir} has no ${name}`, { cause: error });
    }
    throw error;
  }
}

async function readJson(file: string, required: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !required) return null;
    throw new ModelFormatError('BAD_CONFIG', `cannot read ${file}`, { cause: error });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ModelFormatError('BAD_CONFIG', `${file} is not JSON`, { cause: error });
  }
}

function tokenIds(value: unknown): number[] {
  const list = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  return list.filter((v): v is number => Number.isSafeInteger(v) && (v as number) >= 0);
}

/**
 * Writes config.json, generation_config.json and a single model.safetensors into `dir`. With
 * `shapes` (every tensor's name and shape, in the order `tensors` yields them) the tensors
 * are written as they come, so `tensors` may be a generator making one at a time and a model
 * larger than memory is never held whole.
 */
export async function writeHfFolder(
  dir: string,
  files: {
    config: object;
    generationConfig?: object;
    tensors: Iterable<[string, HostTensor]>;
    shapes?: ReadonlyMap<string, readonly number[]>;
    dtype?: SafetensorsDtype;
  },
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'config.json'), `${JSON.stringify(files.config, null, 2)}\n`);
  if (files.generationConfig !== undefined) {
    await writeFile(
      path.join(dir, 'generation_config.json'),
      `${JSON.stringify(files.generationConfig, null, 2)}\n`,
    );
  }
  const tensors = files.shapes === undefined ? [...files.tensors] : files.tensors;
  const shapes = files.shapes ?? new Map([...tensors].map(([name, t]) => [name, t.shape]));
  const dtype = files.dtype ?? 'F32';
  const layout = [...shapes].map(([name, shape]) => ({ name, shape, dtype }));
  await writeSafetensorsFile(
    path.join(dir, 'model.safetensors'),
    layout,
    (function* () {
      let i = 0;
      for (const [name, t] of tensors) {
        if (name !== layout[i]?.name) {
          throw new ModelFormatError(
            'MISSING_TENSOR',
            `tensor "${name}" came where "${layout[i]?.name ?? '(none)'}" was due`,
          );
        }
        i++;
        yield t;
      }
    })(),
    { format: 'pt' },
  );
}
