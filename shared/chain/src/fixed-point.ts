// The contracts store real numbers as integers: `Micro` fields are ×1e6, `Wad` fields ×1e18.

export function toMicro(value: number): bigint {
  return BigInt(Math.round(value * 1e6));
}

export function fromMicro(value: bigint): number {
  return Number(value) / 1e6;
}

export function toWad(value: number): bigint {
  return BigInt(Math.round(value * 1e18));
}

export function fromWad(value: bigint): number {
  return Number(value) / 1e18;
}
