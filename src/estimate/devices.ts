// Memory sizes of common accelerators, Apple chips and CPU machines, and which of them an estimate fits.
// Capacities are the nominal sizes (GPU memory, HBM and DRAM come in binary gigabytes: "24 GB" = 24 GiB);
// the usable part is a little smaller (driver reservations, OS, display).

export interface Device {
  name: string;
  kind: 'gpu' | 'apple' | 'cpu';
  memoryGiB: number;
}

export const DEVICES: readonly Device[] = [
  { name: 'RTX 3060', kind: 'gpu', memoryGiB: 12 },
  { name: 'RTX 3080', kind: 'gpu', memoryGiB: 10 },
  { name: 'RTX 3090', kind: 'gpu', memoryGiB: 24 },
  { name: 'RTX 4060 Ti 16GB', kind: 'gpu', memoryGiB: 16 },
  { name: 'RTX 4070', kind: 'gpu', memoryGiB: 12 },
  { name: 'RTX 4080', kind: 'gpu', memoryGiB: 16 },
  { name: 'RTX 4090', kind: 'gpu', memoryGiB: 24 },
  { name: 'RTX 5090', kind: 'gpu', memoryGiB: 32 },
  { name: 'T4', kind: 'gpu', memoryGiB: 16 },
  { name: 'V100 16GB', kind: 'gpu', memoryGiB: 16 },
  { name: 'V100 32GB', kind: 'gpu', memoryGiB: 32 },
  { name: 'A10', kind: 'gpu', memoryGiB: 24 },
  { name: 'L4', kind: 'gpu', memoryGiB: 24 },
  { name: 'L40S', kind: 'gpu', memoryGiB: 48 },
  { name: 'A100 40GB', kind: 'gpu', memoryGiB: 40 },
  { name: 'A100 80GB', kind: 'gpu', memoryGiB: 80 },
  { name: 'H100 80GB', kind: 'gpu', memoryGiB: 80 },
  { name: 'H200', kind: 'gpu', memoryGiB: 141 },
  { name: 'MI250X', kind: 'gpu', memoryGiB: 128 },
  { name: 'MI300X', kind: 'gpu', memoryGiB: 192 },
  { name: 'Apple M1/M2/M3 8GB', kind: 'apple', memoryGiB: 8 },
  { name: 'Apple M-series 16GB', kind: 'apple', memoryGiB: 16 },
  { name: 'Apple M-series Pro 32GB', kind: 'apple', memoryGiB: 32 },
  { name: 'Apple M2 Max 96GB', kind: 'apple', memoryGiB: 96 },
  { name: 'Apple M3 Max 128GB', kind: 'apple', memoryGiB: 128 },
  { name: 'Apple M2 Ultra 192GB', kind: 'apple', memoryGiB: 192 },
  { name: 'CPU 8 GB RAM', kind: 'cpu', memoryGiB: 8 },
  { name: 'CPU 16 GB RAM', kind: 'cpu', memoryGiB: 16 },
  { name: 'CPU 32 GB RAM', kind: 'cpu', memoryGiB: 32 },
  { name: 'CPU 64 GB RAM', kind: 'cpu', memoryGiB: 64 },
  { name: 'CPU 128 GB RAM', kind: 'cpu', memoryGiB: 128 },
];

export interface DeviceFit {
  device: Device;
  memoryBytes: number;
  fits: boolean;
  /** bytes left over (negative: short by that much) */
  headroomBytes: number;
}

/** For every device: does one of them hold `perDeviceBytes` (the estimate's per-device total)? */
export function deviceFits(perDeviceBytes: number, devices: readonly Device[] = DEVICES): DeviceFit[] {
  return devices.map((device) => {
    const memoryBytes = device.memoryGiB * 2 ** 30;
    return { device, memoryBytes, fits: perDeviceBytes <= memoryBytes, headroomBytes: memoryBytes - perDeviceBytes };
  });
}
