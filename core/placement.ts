/**
 * Placement: which (instance type, region, AZ, market) offers can run a sweep's tasks,
 * ranked by price. Pure: the catalog comes in as data (providers/catalog loads it).
 */

/** One purchasable pool: an instance type in one AZ, spot or on-demand, at a catalog price. */
export interface Offer {
  instanceType: string;
  region: string;
  az: string;
  /** Accelerator name as the catalog spells it (H100, A10G, L4, ...). */
  gpuName: string;
  /** Accelerators per instance (fractional for GPU partitions such as g6f). */
  gpus: number;
  /** Per-device memory in MiB, when the catalog says. */
  gpuMemoryMiB?: number;
  vcpus: number;
  memoryGiB: number;
  arch: string;
  market: "spot" | "on-demand";
  /** USD per instance-hour. Offers without a known price are never created. */
  pricePerHour: number;
  /** "snapshot 2025-…", "DescribeSpotPriceHistory", "Pricing API". */
  priceSource: string;
  /** Epoch ms the price was observed. */
  priceAsOf: number;
}
