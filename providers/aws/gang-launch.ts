/**
 * What gangs (spec `nodes` above 1, docs/gangs.md) need from EC2 beyond a plain launch
 * (docs/adr/0028-gangs-on-ec2.md):
 *
 * - a **cluster placement group** per sweep and region, named from the sweep id, created before
 *   the sweep's first launch there (a duplicate is success) and deleted once the sweep has ended
 *   and its instances are gone;
 * - launches in **whole gangs**: one instant fleet per gang, `MinTargetCapacity` = its size,
 *   single type and single zone, into the placement group, in the zone where the sweep's live
 *   instances already are (a cluster placement group spans one zone, and members must reach each
 *   other by private address);
 * - **EFA** interfaces when `resources.efa` is set, on types that have them.
 *
 * Ec2Compute (ec2-compute.ts) does the launching; this module holds the names and the
 * placement-group calls, efa.ts the EFA types.
 */
import {
  CreatePlacementGroupCommand,
  DeletePlacementGroupCommand,
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  type Tag,
} from "@aws-sdk/client-ec2";

/**
 * The sweep's cluster placement group (the same name in every region it launches in). Placement
 * group names are unique per account and region, up to 255 characters.
 */
export function placementGroupName(stack: string, sweepId: string): string {
  return `${stack}-${sweepId}`;
}

/**
 * Sizes of the fleets a gang launch of `count` instances is made of, in order: whole gangs of
 * `nodes`, after a smaller batch first when `count` is not a multiple (reconcile asks for whole
 * gangs, so a remainder replaces members lost from running gangs).
 */
export function gangBatchSize(count: number, nodes: number): number {
  return count % nodes || Math.min(count, nodes);
}

/** What the placement-group calls need of an EC2 client (the compute's throttled sender). */
export type PlacementSender = (
  command: CreatePlacementGroupCommand | DeletePlacementGroupCommand | DescribeInstancesCommand,
) => Promise<unknown>;

const errorName = (error: unknown) => (error as { name?: string } | null)?.name;

/** Creates the cluster placement group, tagged; one that already exists is success (idempotent). */
export async function ensurePlacementGroup(send: PlacementSender, name: string, tags: Tag[]): Promise<void> {
  try {
    await send(
      new CreatePlacementGroupCommand({
        GroupName: name,
        Strategy: "cluster",
        TagSpecifications: [{ ResourceType: "placement-group", Tags: tags }],
      }),
    );
  } catch (error) {
    if (errorName(error) !== "InvalidPlacementGroup.Duplicate") throw error;
  }
}

/**
 * Deletes the placement group: `deleted`, `absent` (never made, or already deleted: idempotent),
 * or `in-use` while instances are still in it (a terminated instance leaves it only once it is
 * fully terminated, a minute or so after the call).
 */
export async function deletePlacementGroup(
  send: PlacementSender,
  name: string,
): Promise<"deleted" | "absent" | "in-use"> {
  try {
    await send(new DeletePlacementGroupCommand({ GroupName: name }));
    return "deleted";
  } catch (error) {
    const code = errorName(error);
    if (code === "InvalidPlacementGroup.Unknown") return "absent";
    if (code === "InvalidPlacementGroup.InUse") return "in-use";
    throw error;
  }
}

/**
 * The zone (by name) of an instance still pending or running in the placement group, if any:
 * where the sweep's next gang must go. Instances whose `spawn:launch` tag is in `ignore` (the
 * batches being launched now) do not count, so a retried launch asks EC2 exactly what the first
 * one asked (the same ClientToken with other parameters would be refused).
 */
export async function placementGroupZone(
  send: PlacementSender,
  name: string,
  ignore: ReadonlySet<string>,
): Promise<string | undefined> {
  let nextToken: string | undefined;
  do {
    const page = (await send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: "placement-group-name", Values: [name] },
          { Name: "instance-state-name", Values: ["pending", "running"] },
        ],
        ...(nextToken ? { NextToken: nextToken } : {}),
      }),
    )) as DescribeInstancesCommandOutput;
    for (const reservation of page.Reservations ?? [])
      for (const instance of reservation.Instances ?? []) {
        const launch = instance.Tags?.find((t) => t.Key === "spawn:launch")?.Value;
        if (instance.Placement?.AvailabilityZone && !(launch && ignore.has(launch)))
          return instance.Placement.AvailabilityZone;
      }
    nextToken = page.NextToken;
  } while (nextToken);
  return undefined;
}
