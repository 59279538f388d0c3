/**
 * The Compute port on EC2. Launches are `CreateFleet` requests of type `instant` (one
 * synchronous attempt that returns instances and errors) over launch-template overrides of
 * instance type × subnet, spot with `price-capacity-optimized`. A launch walks a fallback chain
 * (docs/adr/0010-ec2-launch-chain.md):
 *
 *   spot in each allowed region, preferred first (types × AZs in one request per region)
 *   → on-demand in each region, when the spec allows it (`on_demand_fallback`)
 *
 * and goes straight to on-demand once the sweep has been preempted `fallback_after_preemptions`
 * times. A (region, market) that was short of capacity, or a region whose API failed, is skipped
 * for a bounded time (remembered with an expiry, never retried in a tight loop and never given
 * up on for good). Requests are paced by client-side token buckets (ec2-throttle.ts): a fleet
 * asks for no more instances than the region's RunInstances resource bucket holds; when every
 * bucket is empty the launch waits for the refill, up to `maxLaunchWaitMs`, and leaves the rest
 * to the next reconcile pass.
 *
 * Idempotency: every fleet request carries a ClientToken derived from the sweep's reserved
 * instance ids of that batch and the region, so a retried call (the SDK's own retry, a throttling
 * retry, a repeated invocation) gets the same fleet back from EC2 instead of a second one.
 *
 * Gang sweeps (`nodes` above 1) launch whole gangs only, into the sweep's cluster placement
 * group, in the zone its live instances are in, with EFA when asked (gang-launch.ts,
 * docs/adr/0028-gangs-on-ec2.md).
 */
import { createHash } from "node:crypto";
import {
  CreateFleetCommand,
  type CreateFleetCommandInput,
  type CreateFleetCommandOutput,
  CreatePlacementGroupCommand,
  type DeletePlacementGroupCommand,
  DescribeAvailabilityZonesCommand,
  type DescribeAvailabilityZonesCommandOutput,
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  type FleetLaunchTemplateOverridesRequest,
  type Tag,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import type { InstanceRecord, Placement, SweepRecord } from "#core/model.js";
import { marketsFor, type Offer, slotsOn } from "#core/placement.js";
import type { Compute, LaunchRequest, LaunchResult, ObservedInstance } from "#core/ports.js";
import { DNS_UPDATER_TAG, type DnsTarget, formatDnsTarget } from "./dns.js";
import { type Ec2ApiName, type Ec2Throttle, isThrottling } from "./ec2-throttle.js";
import { supportsEfa, wantsEfa } from "./efa.js";
import {
  deletePlacementGroup,
  ensurePlacementGroup,
  gangBatchSize,
  type PlacementSender,
  placementGroupName,
  placementGroupZone,
} from "./gang-launch.js";
import type { LaunchConfig } from "./launch-config.js";
import { isProfilePropagating, type SweepProfiles } from "./sweep-role.js";

/** Per-region launch configuration written by the CDK stack (providers/aws/launch-config.ts). */
export type RegionLaunchConfig = Pick<
  LaunchConfig,
  | "launchTemplateId"
  | "launchTemplateVersion"
  | "subnets"
  | "efaLaunchTemplateId"
  | "efaLaunchTemplateVersion"
>;

/** What Ec2Compute needs of an EC2 client: `send`. A real EC2Client, a mock or the simulator. */
export interface Ec2Sender {
  send(
    command:
      | CreateFleetCommand
      | DescribeInstancesCommand
      | TerminateInstancesCommand
      | DescribeAvailabilityZonesCommand
      | CreatePlacementGroupCommand
      | DeletePlacementGroupCommand,
  ): Promise<unknown>;
}

/** CreateFleet takes at most 300 overrides across its launch templates. */
export const MAX_FLEET_OVERRIDES = 300;
/** Instance-id filter values per DescribeInstances request. */
export const MAX_DESCRIBE_IDS = 200;
/** Instance ids per TerminateInstances request. */
export const MAX_TERMINATE_IDS = 1000;

/** Fleet error codes that mean "no capacity (or not at this price) here now": try elsewhere. */
export const CAPACITY_ERRORS: ReadonlySet<string> = new Set([
  "InsufficientInstanceCapacity",
  "InsufficientCapacity",
  "MaxSpotInstanceCountExceeded",
  "SpotMaxPriceTooLow",
  "UnfulfillableCapacity",
  "InsufficientHostCapacity",
]);

/**
 * Waits between CreateFleet attempts while EC2 does not know a sweep's new instance profile yet
 * (IAM is eventually consistent; AWS documents seconds): 30 s in all, then the next pass tries again.
 */
export const PROFILE_PROPAGATION_WAITS_MS = [2_000, 4_000, 8_000, 16_000] as const;

/** EC2 state reasons for an instance spot took back. */
const PREEMPTION_REASONS = new Set(["Server.SpotInstanceTermination", "Server.SpotInstanceShutdown"]);

export interface Ec2ComputeOptions {
  /** The EC2 client of a region (create once per region and reuse). */
  client: (region: string) => Ec2Sender;
  /** Offers that can run the sweep, ranked cheapest first, spot and on-demand (core/placement). */
  offersFor: (sweep: SweepRecord) => readonly Offer[] | Promise<readonly Offer[]>;
  /** The stack's launch template and subnets in a region. */
  launchConfig: (region: string) => Promise<RegionLaunchConfig>;
  /** The stack name, tagged on every instance (`spawn:stack`). */
  stack: string;
  /** The dns-updater and zone, tagged on every instance when the stack has hostnames (docs/dns.md). */
  dns?: DnsTarget;
  /**
   * The per-sweep instance profiles (sweep-role.ts, docs/adr/0036-per-sweep-instance-role.md): a
   * sweep that has one launches with it, and release deletes it. Absent: every instance gets the
   * launch template's shared profile.
   */
  sweepProfiles?: Pick<SweepProfiles, "profileArn" | "release">;
  /** Shared token buckets and backoff; its clock and sleep are used for every wait. */
  throttle: Ec2Throttle;
  /** Longest a launch waits for the RunInstances bucket before leaving the rest to the next pass. @default 60 s */
  maxLaunchWaitMs?: number;
  /** Smallest number of instances worth waiting for when every bucket is empty. @default 50 */
  minBatch?: number;
  /** A region whose API call failed (not capacity) is skipped this long. @default 10 min */
  regionFailureTtlMs?: number;
  /** A (region, market) short of capacity is skipped this long. @default 2 min */
  capacityShortTtlMs?: number;
}

/** One step of the fallback chain: one market in one region, its offers ranked. */
interface Stage {
  region: string;
  market: Offer["market"];
  offers: readonly Offer[];
}

/** How a gang sweep's fleets are made (all or nothing, in the placement group). */
interface GangFleet {
  /** The sweep's cluster placement group (gang-launch.ts placementGroupName). */
  group: string;
  /** The zone (ID) the sweep's live instances are in: a placement group spans one zone. */
  zoneId?: string;
  efa: boolean;
  /** Regions this launch has made sure the placement group exists in. */
  ready: Set<string>;
}

/** What one fleet request produced. */
interface FleetOutcome {
  launched: Array<{ ec2Id: string; placement: Placement; gpus: number }>;
  /** Why fewer than asked were launched, when that happened. */
  problem?: string;
  /** The region's API failed (not a capacity shortage). */
  regionFailed?: boolean;
}

/**
 * Which markets a launch may use, in order: the spec's (core/placement marketsFor), except that
 * a sweep preempted `fallback_after_preemptions` times with `on_demand_fallback` goes on-demand only.
 */
export function launchMarkets(sweep: SweepRecord): Array<Offer["market"]> {
  const r = sweep.spec.resources;
  const markets = marketsFor(r);
  if (markets.includes("on-demand") && (sweep.preemptions ?? 0) >= r.fallback_after_preemptions)
    return ["on-demand"];
  return markets;
}

/** Regions in the order a launch tries them: `resources.regions`, else as the ranked offers first name them. */
export function regionOrder(sweep: SweepRecord, offers: readonly Offer[]): string[] {
  const seen = [...new Set(offers.map((o) => o.region))];
  const allowed = sweep.spec.resources.regions;
  return allowed ? allowed.filter((r) => seen.includes(r)) : seen;
}

/** The fallback chain: every market in order, and within it every region in order, that has offers. */
export function launchStages(sweep: SweepRecord, offers: readonly Offer[]): Stage[] {
  const stages: Stage[] = [];
  for (const market of launchMarkets(sweep)) {
    for (const region of regionOrder(sweep, offers)) {
      const here = offers.filter((o) => o.region === region && o.market === market);
      if (here.length > 0) stages.push({ region, market, offers: here });
    }
  }
  return stages;
}

/**
 * A ClientToken for one batch of reserved ids in one region and market (EC2 allows 64 ASCII
 * characters). The market is part of it: after spot comes back short, the same ids are asked
 * for on-demand, which is another request (with the same token EC2 would answer the spot one).
 */
export function clientToken(region: string, market: Offer["market"], instanceIds: readonly string[]): string {
  const digest = createHash("sha256")
    .update(`${region}\n${market}\n${instanceIds.join("\n")}`)
    .digest("hex");
  return `spawn-${digest.slice(0, 48)}`;
}

/** Tags on every instance and volume of a fleet (see ADR 0010 for why identity is not a tag). */
export function fleetTags(
  stack: string,
  sweepId: string,
  instanceIds: readonly string[],
  deadline: number,
): Tag[] {
  return [
    { Key: "spawn:sweep", Value: sweepId },
    { Key: "spawn:stack", Value: stack },
    { Key: "spawn:deadline", Value: new Date(deadline).toISOString() },
    { Key: "spawn:launch", Value: launchLabel(instanceIds) },
  ];
}

/** The `spawn:launch` tag of a fleet: the first and last of the instance ids it launched. */
export function launchLabel(instanceIds: readonly string[]): string {
  return `${instanceIds[0]}..${instanceIds[instanceIds.length - 1]}`;
}

const errorName = (error: unknown) =>
  (error as { name?: string } | null)?.name ?? (error instanceof Error ? error.message : String(error));

const errorText = (error: unknown) =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

/** Launches, observes and terminates EC2 instances for sweeps. Keep one per process (it remembers failures). */
export class Ec2Compute implements Compute {
  /** Skipped until `until`: a region (`us-east-1`) or a market in it (`us-east-1/spot`). */
  private readonly cooling = new Map<string, { until: number; reason: string }>();
  /** AZ name → AZ ID per region (names are shuffled per account; offers use IDs). */
  private readonly zoneIds = new Map<string, Promise<Map<string, string>>>();

  constructor(private readonly o: Ec2ComputeOptions) {}

  private get clock() {
    return this.o.throttle.clock;
  }

  private coolingReason(stage: Stage): string | undefined {
    const now = this.clock.now();
    for (const key of [stage.region, `${stage.region}/${stage.market}`]) {
      const entry = this.cooling.get(key);
      if (entry && entry.until > now) return entry.reason;
      if (entry) this.cooling.delete(key);
    }
    return undefined;
  }

  private cool(key: string, ms: number, reason: string): void {
    this.cooling.set(key, { until: this.clock.now() + ms, reason });
  }

  /** The region's AZ name → ID map, asked of EC2 once per region (a failed ask is retried next time). */
  private zones(region: string): Promise<Map<string, string>> {
    let zones = this.zoneIds.get(region);
    if (!zones) {
      zones = this.send<DescribeAvailabilityZonesCommandOutput>(
        region,
        "DescribeAvailabilityZones",
        new DescribeAvailabilityZonesCommand({}),
      ).then((out) => new Map((out.AvailabilityZones ?? []).map((z) => [z.ZoneName ?? "", z.ZoneId ?? ""])));
      zones.catch(() => this.zoneIds.delete(region));
      this.zoneIds.set(region, zones);
    }
    return zones;
  }

  private send<T>(region: string, api: Ec2ApiName, command: Parameters<Ec2Sender["send"]>[0]): Promise<T> {
    return this.o.throttle.call(region, api, () => this.o.client(region).send(command) as Promise<T>);
  }

  /** Slots on the first offer the launch would try (offers come ranked by price per slot). */
  async expectedSlots(sweep: SweepRecord): Promise<number> {
    const [first] = await this.o.offersFor(sweep);
    return slotsOn(sweep.spec.resources, first?.gpus ?? 0);
  }

  /** A sender bound to one region, for gang-launch.ts. */
  private placementSender(region: string): PlacementSender {
    const api = (command: Parameters<PlacementSender>[0]): Ec2ApiName =>
      command instanceof DescribeInstancesCommand
        ? "DescribeInstances"
        : command instanceof CreatePlacementGroupCommand
          ? "CreatePlacementGroup"
          : "DeletePlacementGroup";
    return (command) => this.send(region, api(command), command);
  }

  /**
   * Where a gang sweep's next fleet must go: the region and zone (ID) of an instance still in its
   * placement group (members reach each other by private address, and a cluster placement group
   * spans one zone), or anywhere (undefined) when none is left. Throws when a region cannot say:
   * launching elsewhere could split the sweep.
   */
  private async gangAnchor(
    group: string,
    regions: ReadonlySet<string>,
    launching: ReadonlySet<string>,
  ): Promise<{ region: string; zoneId: string } | undefined> {
    for (const region of regions) {
      const zone = await placementGroupZone(this.placementSender(region), group, launching);
      if (zone) return { region, zoneId: (await this.zones(region)).get(zone) ?? zone };
    }
    return undefined;
  }

  async launch(request: LaunchRequest): Promise<LaunchResult[]> {
    const { sweep } = request;
    const deadline = request.deadline ?? this.clock.now() + sweep.spec.ttl;
    const nodes = sweep.spec.nodes;
    const efa = wantsEfa(sweep.spec);
    const offers = await this.o.offersFor(sweep);
    let profile: string | undefined;
    try {
      profile = await this.o.sweepProfiles?.profileArn(sweep.sweepId);
    } catch (error) {
      // Never the shared profile instead: the task would run without its grants, the agent unconfined.
      const message = `cannot look up the sweep's instance profile: ${errorText(error)}`;
      return request.instanceIds.map((instanceId) => ({ instanceId, error: message }));
    }
    // An EFA interface needs a type that has one (the plan refuses a spec that allows none).
    const stages = launchStages(sweep, efa ? offers.filter((o) => supportsEfa(o.instanceType)) : offers);
    const results: LaunchResult[] = [];
    const problems: string[] = [];
    if (stages.length === 0)
      problems.push(
        `no offer matches the spec's resources (${launchMarkets(sweep).join(", ")}${efa ? ", with EFA for resources.efa" : ""})`,
      );
    const skip = new Set<Stage>();
    for (const stage of stages) {
      const reason = this.coolingReason(stage);
      if (reason) {
        skip.add(stage);
        problems.push(`${stage.region} ${stage.market} skipped for now: ${reason}`);
      }
    }
    let gang: GangFleet | undefined;
    if (nodes > 1) {
      gang = { group: placementGroupName(this.o.stack, sweep.sweepId), efa, ready: new Set() };
      // This launch's own batches, as tagged: found in the group, they are a retry's, not an anchor.
      const launching = new Set<string>();
      for (let i = 0; i < request.instanceIds.length; ) {
        const size = gangBatchSize(request.instanceIds.length - i, nodes);
        launching.add(launchLabel(request.instanceIds.slice(i, i + size)));
        i += size;
      }
      try {
        // Every region of the chain, cooling ones too: the sweep's instances may be there.
        const anchor = await this.gangAnchor(gang.group, new Set(stages.map((s) => s.region)), launching);
        if (anchor) {
          gang.zoneId = anchor.zoneId;
          for (const s of stages) if (s.region !== anchor.region) skip.add(s);
        }
      } catch (error) {
        for (const s of stages) skip.add(s);
        problems.push(`cannot tell where the sweep's gangs run: ${errorText(error)}`);
      }
    }
    const waitUntil = this.clock.now() + (this.o.maxLaunchWaitMs ?? 60_000);
    let pending = [...request.instanceIds];
    let budgetLeft = request.budgetLeft ?? Number.POSITIVE_INFINITY;
    const hours = Math.max(0, deadline - this.clock.now()) / 3_600_000;

    while (pending.length > 0) {
      let progressed = false;
      let starved = false;
      for (const stage of stages) {
        if (pending.length === 0) break;
        if (skip.has(stage)) continue;
        // What the budget still allows here, each instance at the stage's dearest price until its deadline.
        const dearest = Math.max(...stage.offers.map((o) => o.pricePerHour));
        const affordable = dearest * hours > 0 ? Math.floor(budgetLeft / (dearest * hours)) : pending.length;
        // A gang sweep launches one gang per fleet, whole or not at all.
        const least = gang ? gangBatchSize(pending.length, nodes) : 1;
        if (affordable < least) {
          skip.add(stage);
          problems.push(
            `budget: $${Math.max(0, budgetLeft).toFixed(2)} left is less than ${least === 1 ? "one instance" : `a gang of ${least} instances`} until its deadline`,
          );
          continue;
        }
        const bucket = this.o.throttle.instanceBucket(stage.region);
        let granted = bucket.take(gang ? least : Math.min(pending.length, affordable));
        if (granted < least) {
          bucket.refund(granted);
          granted = 0;
        }
        if (granted === 0) {
          starved = true;
          continue;
        }
        const batch = pending.slice(0, granted);
        const outcome = await this.fleet(stage, sweep, batch, deadline, profile, gang);
        bucket.refund(granted - outcome.launched.length);
        outcome.launched.forEach((l, i) => {
          budgetLeft -= l.placement.pricePerHour * hours;
          results.push({
            instanceId: batch[i] as string,
            providerRef: l.ec2Id,
            placement: l.placement,
            gpus: l.gpus,
          });
        });
        pending = [...batch.slice(outcome.launched.length), ...pending.slice(granted)];
        if (outcome.launched.length > 0) progressed = true;
        const landed = outcome.launched[0]?.placement;
        if (gang && landed && !gang.zoneId) {
          // The sweep's first gang chose the zone; every later one follows it there.
          gang.zoneId = landed.az;
          for (const s of stages) if (s.region !== stage.region) skip.add(s);
        }
        if (outcome.problem) {
          skip.add(stage);
          problems.push(`${stage.region} ${stage.market}: ${outcome.problem}`);
          if (outcome.regionFailed)
            this.cool(stage.region, this.o.regionFailureTtlMs ?? 600_000, outcome.problem);
          else
            this.cool(
              `${stage.region}/${stage.market}`,
              this.o.capacityShortTtlMs ?? 120_000,
              outcome.problem,
            );
        }
        // One gang per fleet: the next gang starts again from the preferred stage.
        if (gang && landed) break;
      }
      if (pending.length === 0 || progressed) continue;
      if (!starved) break;
      // Every usable stage is waiting for its region's RunInstances bucket: wait for the first
      // that can take a worthwhile batch, unless that is later than this launch may wait.
      const want = gang
        ? gangBatchSize(pending.length, nodes)
        : Math.min(pending.length, this.o.minBatch ?? 50);
      const wait = Math.min(
        ...stages
          .filter((s) => !skip.has(s))
          .map((s) => this.o.throttle.instanceBucket(s.region).msUntil(want)),
      );
      if (this.clock.now() + wait > waitUntil) {
        problems.push(
          "EC2 launch rate limit (RunInstances resource bucket): the next pass launches the rest",
        );
        break;
      }
      await this.o.throttle.sleep(wait);
    }
    const error = [...new Set(problems)].join("; ") || "not launched";
    for (const instanceId of pending) results.push({ instanceId, error });
    return results;
  }

  /**
   * One CreateFleet (instant) for `batch` in one stage; maps what came back to placements. For a
   * gang: all or nothing (MinTargetCapacity, one type, one zone), into the placement group.
   */
  private async fleet(
    stage: Stage,
    sweep: SweepRecord,
    batch: readonly string[],
    deadline: number,
    profile: string | undefined,
    gang?: GangFleet,
  ): Promise<FleetOutcome> {
    let config: RegionLaunchConfig;
    let zones: Map<string, string>;
    try {
      config = await this.o.launchConfig(stage.region);
      zones = await this.zones(stage.region);
    } catch (error) {
      return { launched: [], problem: `no launch configuration: ${errorText(error)}`, regionFailed: true };
    }
    const template = gang?.efa
      ? { id: config.efaLaunchTemplateId, version: config.efaLaunchTemplateVersion }
      : { id: config.launchTemplateId, version: config.launchTemplateVersion };
    if (!template.id || !template.version) {
      return {
        launched: [],
        problem:
          "resources.efa: the stack's launch configuration here has no EFA launch template; redeploy the stack (spawn deploy)",
        regionFailed: true,
      };
    }
    if (gang && !gang.ready.has(stage.region)) {
      try {
        await ensurePlacementGroup(this.placementSender(stage.region), gang.group, [
          { Key: "spawn:sweep", Value: sweep.sweepId },
          { Key: "spawn:stack", Value: this.o.stack },
        ]);
      } catch (error) {
        if (isThrottling(error)) return { launched: [], problem: `throttled: ${errorText(error)}` };
        return {
          launched: [],
          problem: `cannot create placement group ${gang.group}: ${errorText(error)}`,
          regionFailed: true,
        };
      }
      gang.ready.add(stage.region);
    }
    // Offers name AZs by ID; the stack's subnets by name. A gang follows the sweep's zone.
    const subnets = config.subnets
      .map((s) => ({ subnetId: s.subnetId, az: zones.get(s.az) ?? s.az }))
      .filter((s) => !gang?.zoneId || s.az === gang.zoneId);
    const subnetAz = new Map(subnets.map((s) => [s.subnetId, s.az]));
    const maxPrice = sweep.spec.resources.max_price;
    const overrides: FleetLaunchTemplateOverridesRequest[] = [];
    const offerOf = new Map<string, Offer>();
    for (const offer of stage.offers) {
      for (const subnet of subnets.filter((s) => s.az === offer.az)) {
        if (overrides.length >= MAX_FLEET_OVERRIDES) break;
        overrides.push({
          InstanceType: offer.instanceType as FleetLaunchTemplateOverridesRequest["InstanceType"],
          SubnetId: subnet.subnetId,
          ...(stage.market === "spot" && maxPrice !== undefined ? { MaxPrice: String(maxPrice) } : {}),
          ...(gang ? { Placement: { GroupName: gang.group } } : {}),
          // Instant fleets take the profile as an override, over the launch template's shared one.
          ...(profile ? { IamInstanceProfile: { Arn: profile } } : {}),
        });
        offerOf.set(`${offer.instanceType}/${offer.az}`, offer);
      }
    }
    if (overrides.length === 0) {
      return {
        launched: [],
        problem: gang?.zoneId
          ? `no offer in zone ${gang.zoneId}, where the sweep's gangs run`
          : "no subnet of the stack in the offers' zones",
        regionFailed: !gang?.zoneId,
      };
    }
    const tags = fleetTags(this.o.stack, sweep.sweepId, batch, deadline);
    if (this.o.dns) tags.push({ Key: DNS_UPDATER_TAG, Value: formatDnsTarget(this.o.dns) });
    const spot = stage.market === "spot";
    // EC2 launches all of a gang or none of it, of one type in one zone.
    const whole = gang
      ? { SingleInstanceType: true, SingleAvailabilityZone: true, MinTargetCapacity: batch.length }
      : {};
    const input: CreateFleetCommandInput = {
      Type: "instant",
      ClientToken: clientToken(stage.region, stage.market, batch),
      LaunchTemplateConfigs: [
        {
          LaunchTemplateSpecification: { LaunchTemplateId: template.id, Version: template.version },
          Overrides: overrides,
        },
      ],
      TargetCapacitySpecification: {
        TotalTargetCapacity: batch.length,
        DefaultTargetCapacityType: spot ? "spot" : "on-demand",
        ...(spot ? { SpotTargetCapacity: batch.length } : { OnDemandTargetCapacity: batch.length }),
      },
      ...(spot
        ? { SpotOptions: { AllocationStrategy: "price-capacity-optimized", ...whole } }
        : {
            OnDemandOptions: {
              AllocationStrategy: "lowest-price",
              ...(maxPrice !== undefined ? { MaxTotalPrice: String(maxPrice * batch.length) } : {}),
              ...whole,
            },
          }),
      TagSpecifications: [
        { ResourceType: "instance", Tags: tags },
        { ResourceType: "volume", Tags: tags },
      ],
    };
    let out: CreateFleetCommandOutput;
    try {
      out = await this.createFleet(stage.region, input, profile !== undefined);
    } catch (error) {
      if (isThrottling(error)) return { launched: [], problem: `throttled: ${errorText(error)}` };
      if (isProfilePropagating(errorName(error), (error as Error).message))
        return {
          launched: [],
          problem: `the sweep's instance profile is not usable yet: ${errorText(error)}`,
        };
      if (CAPACITY_ERRORS.has(errorName(error))) return { launched: [], problem: errorText(error) };
      return { launched: [], problem: errorText(error), regionFailed: true };
    }
    const launched: FleetOutcome["launched"] = [];
    for (const group of out.Instances ?? []) {
      const chosen = group.LaunchTemplateAndOverrides?.Overrides;
      const type = chosen?.InstanceType ?? group.InstanceType ?? "";
      const az = subnetAz.get(chosen?.SubnetId ?? "") ?? zones.get(chosen?.AvailabilityZone ?? "") ?? "";
      const market = group.Lifecycle === "spot" ? "spot" : "on-demand";
      const price = priceOf(stage, offerOf.get(`${type}/${az}`), type);
      for (const ec2Id of group.InstanceIds ?? []) {
        launched.push({
          ec2Id,
          placement: {
            instanceType: type,
            region: stage.region,
            ...(az ? { az } : {}),
            market,
            pricePerHour: price.pricePerHour,
            priceSource: price.priceSource,
          },
          gpus: price.gpus,
        });
      }
    }
    // The same response for the same ClientToken; a fixed order makes the id mapping stable too.
    launched.sort((a, b) => (a.ec2Id < b.ec2Id ? -1 : a.ec2Id > b.ec2Id ? 1 : 0));
    if (launched.length > batch.length) {
      // Never expected from an instant fleet; terminating the surplus keeps max_instances true.
      const surplus = launched.splice(batch.length);
      await this.terminateIds(
        stage.region,
        surplus.map((s) => s.ec2Id),
      );
    }
    if (launched.length >= batch.length) return { launched };
    const codes = [...new Set((out.Errors ?? []).map((e) => e.ErrorCode ?? "unknown"))];
    const detail = (out.Errors ?? [])[0]?.ErrorMessage;
    const capacity = codes.length === 0 || codes.some((c) => CAPACITY_ERRORS.has(c));
    let problem = `${launched.length} of ${batch.length} launched${codes.length ? ` (${codes.join(", ")}${detail ? `: ${detail}` : ""})` : ""}`;
    if (gang && launched.length > 0) {
      // MinTargetCapacity should make this impossible; part of a gang could never start, so it goes.
      await this.terminateIds(
        stage.region,
        launched.map((l) => l.ec2Id),
      );
      problem += `; terminated them: a gang of ${batch.length} starts whole or not at all`;
      return { launched: [], problem, regionFailed: !capacity };
    }
    return { launched, problem, regionFailed: !capacity };
  }

  /**
   * CreateFleet; with a sweep's own profile, retried with PROFILE_PROPAGATION_WAITS_MS while EC2
   * answers "Invalid IAM Instance Profile" (thrown, or as the fleet's only errors) for a profile
   * IAM has not propagated yet. Each retry is a new request: under the same ClientToken EC2 would
   * return the failed fleet again. The tokens stay deterministic, so a repeated invocation still
   * launches nothing twice.
   */
  private async createFleet(
    region: string,
    input: CreateFleetCommandInput,
    withProfile: boolean,
  ): Promise<CreateFleetCommandOutput> {
    for (let attempt = 0; ; attempt++) {
      const retry = withProfile && attempt < PROFILE_PROPAGATION_WAITS_MS.length;
      const command = new CreateFleetCommand(
        attempt === 0 ? input : { ...input, ClientToken: `${input.ClientToken}-p${attempt}` },
      );
      try {
        const out = await this.send<CreateFleetCommandOutput>(region, "CreateFleet", command);
        const propagating =
          (out.Instances ?? []).length === 0 &&
          (out.Errors ?? []).some((e) => isProfilePropagating(e.ErrorCode, e.ErrorMessage));
        if (!propagating || !retry) return out;
      } catch (error) {
        if (!retry || !isProfilePropagating(errorName(error), (error as Error).message)) throw error;
      }
      await this.o.throttle.sleep(PROFILE_PROPAGATION_WAITS_MS[attempt] as number);
    }
  }

  async terminate(instances: readonly InstanceRecord[], _reason: string): Promise<void> {
    for (const [region, ids] of byRegion(instances)) await this.terminateIds(region, ids);
  }

  /**
   * Deletes the sweep's own role and instance profile, and a gang sweep's placement group in every
   * region it may have been made in (the spec's regions with offers, and those its instances ran
   * in). Idempotent. Returns what is still held: a group keeps its instances until they are fully
   * terminated, a minute or so after the call.
   */
  async release(sweep: SweepRecord, instances: readonly InstanceRecord[]): Promise<string | undefined> {
    // Its instances are terminated: nothing can launch with the profile again.
    await this.o.sweepProfiles?.release(sweep.sweepId);
    if (sweep.spec.nodes <= 1) return undefined;
    const group = placementGroupName(this.o.stack, sweep.sweepId);
    const regions = new Set(regionOrder(sweep, await this.o.offersFor(sweep)));
    for (const instance of instances) if (instance.placement) regions.add(instance.placement.region);
    const held: string[] = [];
    for (const region of regions) {
      if ((await deletePlacementGroup(this.placementSender(region), group)) === "in-use") held.push(region);
    }
    return held.length > 0 ? `placement group ${group} still has instances in ${held.join(", ")}` : undefined;
  }

  /** TerminateInstances in batches; ids EC2 no longer knows are dropped and the rest sent again. */
  private async terminateIds(region: string, ids: readonly string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += MAX_TERMINATE_IDS) {
      let batch = ids.slice(i, i + MAX_TERMINATE_IDS);
      while (batch.length > 0) {
        try {
          await this.send(
            region,
            "TerminateInstances",
            new TerminateInstancesCommand({ InstanceIds: batch }),
          );
          break;
        } catch (error) {
          const name = errorName(error);
          if (name !== "InvalidInstanceID.NotFound" && name !== "InvalidInstanceID.Malformed") throw error;
          const unknown = new Set((error as Error).message.match(/i-[0-9a-f]+/g) ?? []);
          const rest = batch.filter((id) => !unknown.has(id));
          // The message named none of ours: nothing left that we could send again.
          if (rest.length === batch.length) break;
          batch = rest;
        }
      }
    }
  }

  async describe(instances: readonly InstanceRecord[]): Promise<ObservedInstance[]> {
    const out: ObservedInstance[] = [];
    const ours = new Map<string, string>();
    for (const instance of instances) {
      // Not yet recorded with an EC2 id: a launch in flight (reconcile's launch timeout covers a lost one).
      if (!instance.providerRef || !instance.placement)
        out.push({ instanceId: instance.instanceId, state: "pending" });
      else ours.set(instance.providerRef, instance.instanceId);
    }
    for (const [region, ids] of byRegion(instances)) {
      for (let i = 0; i < ids.length; i += MAX_DESCRIBE_IDS) {
        const chunk = ids.slice(i, i + MAX_DESCRIBE_IDS);
        const seen = new Set<string>();
        let nextToken: string | undefined;
        do {
          const page: DescribeInstancesCommandOutput = await this.send(
            region,
            "DescribeInstances",
            new DescribeInstancesCommand({
              // A filter, not InstanceIds: an id EC2 has forgotten is simply absent, not an error for all.
              Filters: [{ Name: "instance-id", Values: chunk }],
              ...(nextToken ? { NextToken: nextToken } : {}),
            }),
          );
          for (const reservation of page.Reservations ?? []) {
            for (const ec2 of reservation.Instances ?? []) {
              const instanceId = ec2.InstanceId ? ours.get(ec2.InstanceId) : undefined;
              if (!instanceId || !ec2.InstanceId) continue;
              seen.add(ec2.InstanceId);
              const name = ec2.State?.Name;
              const state = name === "pending" ? "pending" : name === "running" ? "running" : "gone";
              const code = ec2.StateReason?.Code;
              out.push({
                instanceId,
                state,
                ...(state === "gone" && code ? { reason: ec2.StateReason?.Message ?? code } : {}),
                ...(state === "gone" && code && PREEMPTION_REASONS.has(code) ? { preempted: true } : {}),
              });
            }
          }
          nextToken = page.NextToken;
        } while (nextToken);
        for (const ec2Id of chunk) {
          const instanceId = ours.get(ec2Id);
          if (!seen.has(ec2Id) && instanceId) out.push({ instanceId, state: "gone" });
        }
      }
    }
    return out;
  }
}

/**
 * The catalog price of the pool an instance landed in. Should EC2 name a pool we did not offer
 * exactly (another zone of the same type), the same type's dearest offer in the stage is used,
 * and failing that the stage's dearest: an upper bound, said so in the source, never a guess low.
 */
function priceOf(
  stage: Stage,
  exact: Offer | undefined,
  type: string,
): { pricePerHour: number; priceSource: string; gpus: number } {
  if (exact) return { pricePerHour: exact.pricePerHour, priceSource: exact.priceSource, gpus: exact.gpus };
  const sameType = stage.offers.filter((o) => o.instanceType === type);
  const pool = sameType.length > 0 ? sameType : stage.offers;
  const dearest = pool.reduce((a, b) => (b.pricePerHour > a.pricePerHour ? b : a));
  return {
    pricePerHour: dearest.pricePerHour,
    priceSource: `upper bound from ${dearest.priceSource}`,
    gpus: sameType[0]?.gpus ?? 0,
  };
}

/** EC2 ids of the instances that have one, grouped by the region they were launched in. */
function byRegion(instances: readonly InstanceRecord[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const instance of instances) {
    const region = instance.placement?.region;
    if (!instance.providerRef || !region) continue;
    groups.set(region, [...(groups.get(region) ?? []), instance.providerRef]);
  }
  return groups;
}
