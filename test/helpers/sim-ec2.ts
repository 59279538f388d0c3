/**
 * A simulated EC2 for tests and the launch benchmark: a fake client (`send`) per region that
 * answers CreateFleet (instant), DescribeInstances and TerminateInstances the way EC2 does in
 * the respects spawn relies on:
 *
 * - capacity per pool (instance type × AZ × market): a fleet gets what its overrides' pools
 *   hold, in override order, and an `InsufficientInstanceCapacity` entry in `Errors` for the rest;
 * - the request token bucket per (region, API) and the RunInstances resource bucket per region
 *   (1,000 instances, 2 per second): over either, the call fails with `RequestLimitExceeded`;
 * - ClientToken idempotency per region: the same token returns the first call's response;
 * - DescribeInstances with an `instance-id` filter omits ids it does not know; TerminateInstances
 *   fails for an unknown id with `InvalidInstanceID.NotFound` naming it;
 * - preemptions: `preempt()` takes spot instances back (state terminated, reason
 *   `Server.SpotInstanceTermination`), freeing their pool.
 *
 * Time is the caller's clock: advance it and buckets refill, pending instances start.
 */
import {
  CreateFleetCommand,
  type CreateFleetCommandInput,
  type CreateFleetCommandOutput,
  DescribeAvailabilityZonesCommand,
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { mapLimit } from "../../core/concurrency.js";
import { ConditionFailedError } from "../../core/errors.js";
import type { InstanceRecord, SweepRecord, TaskRecord } from "../../core/model.js";
import type { Offer } from "../../core/placement.js";
import type { Clock, StateStore } from "../../core/ports.js";
import type { Ec2Sender, RegionLaunchConfig } from "../../providers/aws/ec2-compute.js";
import {
  type BucketSpec,
  DEFAULT_REQUEST_BUCKETS,
  EC2_API,
  type Ec2ApiName,
  RUN_INSTANCES_BUCKET,
  TokenBucket,
} from "../../providers/aws/ec2-throttle.js";

export interface SimInstance {
  ec2Id: string;
  region: string;
  az: string;
  instanceType: string;
  market: "spot" | "on-demand";
  state: "pending" | "running" | "terminated";
  stateReason?: { Code: string; Message: string };
  tags: Record<string, string>;
  launchedAt: number;
}

export interface SimEc2Options {
  clock: Clock;
  /** Capacity per pool, keyed `region/az/type/market`, e.g. `us-east-1/us-east-1a/g5.xlarge/spot`. */
  capacity: Record<string, number>;
  /** Instances stay `pending` this long after launch. @default 30 s */
  bootMs?: number;
  /** Seeded randomness for preemptions. */
  random: () => number;
  requestBuckets?: Partial<Record<(typeof EC2_API)[Ec2ApiName], BucketSpec>>;
  runInstancesBucket?: BucketSpec;
}

/** An error shaped like the SDK's service exceptions (`name` is the EC2 error code). */
export function ec2Error(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

export const poolKey = (region: string, az: string, type: string, market: string) =>
  `${region}/${az}/${type}/${market}`;

export class SimEc2 {
  readonly instances = new Map<string, SimInstance>();
  /** Calls per API, throttled ones included. */
  readonly calls: Record<Ec2ApiName, number> = {
    CreateFleet: 0,
    DescribeInstances: 0,
    TerminateInstances: 0,
    DescribeAvailabilityZones: 0,
    CreatePlacementGroup: 0,
    DeletePlacementGroup: 0,
  };
  /** Calls refused with RequestLimitExceeded. */
  throttled = 0;
  /** Every CreateFleet input, in order (throttled ones excluded). */
  readonly fleets: Array<{ region: string; input: CreateFleetCommandInput }> = [];
  private readonly free: Map<string, number>;
  private readonly tokens = new Map<string, CreateFleetCommandOutput>();
  private readonly requestBuckets = new Map<string, TokenBucket>();
  private readonly runBuckets = new Map<string, TokenBucket>();
  private nextId = 1;

  constructor(private readonly o: SimEc2Options) {
    this.free = new Map(Object.entries(o.capacity));
  }

  /** The regions and AZs the pools name. */
  azs(region: string): string[] {
    return [
      ...new Set(
        [...this.free.keys()].filter((k) => k.startsWith(`${region}/`)).map((k) => k.split("/")[1] as string),
      ),
    ];
  }

  /** AZ names are the IDs' with `name-` in front (EC2 shuffles names per account; pools use IDs). */
  static zoneName = (azId: string) => `name-${azId}`;

  /** A launch configuration like the stack's: one subnet per AZ of the region, named by AZ name. */
  launchConfig = async (region: string): Promise<RegionLaunchConfig> => ({
    launchTemplateId: `lt-${region}`,
    launchTemplateVersion: "1",
    subnets: this.azs(region).map((az) => ({ subnetId: `subnet-${az}`, az: SimEc2.zoneName(az) })),
  });

  /** The fake client of one region. */
  client = (region: string): Ec2Sender => ({
    send: async (command) => this.handle(region, command),
  });

  private now(): number {
    return this.o.clock.now();
  }

  private refresh(): void {
    const bootMs = this.o.bootMs ?? 30_000;
    for (const i of this.instances.values())
      if (i.state === "pending" && this.now() - i.launchedAt >= bootMs) i.state = "running";
  }

  private bucket(map: Map<string, TokenBucket>, key: string, spec: BucketSpec): TokenBucket {
    let b = map.get(key);
    if (!b) {
      b = new TokenBucket(spec, this.o.clock);
      map.set(key, b);
    }
    return b;
  }

  private admit(region: string, api: Ec2ApiName): void {
    this.calls[api]++;
    const category = EC2_API[api];
    const spec = this.o.requestBuckets?.[category] ?? DEFAULT_REQUEST_BUCKETS[category];
    if (this.bucket(this.requestBuckets, `${region}/${api}`, spec).take(1) < 1) {
      this.throttled++;
      throw ec2Error("RequestLimitExceeded", "Request limit exceeded.");
    }
  }

  private async handle(region: string, command: Parameters<Ec2Sender["send"]>[0]): Promise<unknown> {
    this.refresh();
    if (command instanceof CreateFleetCommand) return this.createFleet(region, command.input);
    if (command instanceof DescribeInstancesCommand) return this.describe(region, command.input);
    if (command instanceof TerminateInstancesCommand)
      return this.terminate(region, command.input.InstanceIds ?? []);
    if (command instanceof DescribeAvailabilityZonesCommand) {
      this.admit(region, "DescribeAvailabilityZones");
      return {
        $metadata: {},
        AvailabilityZones: this.azs(region).map((ZoneId) => ({ ZoneId, ZoneName: SimEc2.zoneName(ZoneId) })),
      };
    }
    throw new Error(`SimEc2: unsupported command ${(command as object).constructor.name}`);
  }

  private createFleet(region: string, input: CreateFleetCommandInput): CreateFleetCommandOutput {
    this.admit(region, "CreateFleet");
    const tokenKey = `${region}/${input.ClientToken}`;
    const previous = input.ClientToken ? this.tokens.get(tokenKey) : undefined;
    if (previous) return previous;
    if (input.Type !== "instant")
      throw ec2Error("InvalidParameterValue", "only instant fleets are simulated");
    const target = input.TargetCapacitySpecification?.TotalTargetCapacity ?? 0;
    const market =
      input.TargetCapacitySpecification?.DefaultTargetCapacityType === "spot" ? "spot" : "on-demand";
    const run = this.bucket(this.runBuckets, region, this.o.runInstancesBucket ?? RUN_INSTANCES_BUCKET);
    if (run.available() < target) {
      this.throttled++;
      throw ec2Error("RequestLimitExceeded", "Request limit exceeded (RunInstances resource tokens).");
    }
    this.fleets.push({ region, input });
    const tags: Record<string, string> = {};
    for (const spec of input.TagSpecifications ?? [])
      if (spec.ResourceType === "instance")
        for (const t of spec.Tags ?? []) tags[t.Key ?? ""] = t.Value ?? "";
    const out: CreateFleetCommandOutput = {
      $metadata: {},
      FleetId: `fleet-${this.nextId}`,
      Instances: [],
      Errors: [],
    };
    let left = target;
    for (const config of input.LaunchTemplateConfigs ?? []) {
      for (const override of config.Overrides ?? []) {
        const az = (override.SubnetId ?? "").replace(/^subnet-/, "");
        const type = override.InstanceType ?? "";
        const key = poolKey(region, az, type, market);
        const take = Math.min(left, this.free.get(key) ?? 0);
        if (take > 0) {
          this.free.set(key, (this.free.get(key) ?? 0) - take);
          const ids: string[] = [];
          for (let n = 0; n < take; n++) {
            const ec2Id = `i-${(this.nextId++).toString(16).padStart(17, "0")}`;
            ids.push(ec2Id);
            this.instances.set(ec2Id, {
              ec2Id,
              region,
              az,
              instanceType: type,
              market,
              state: "pending",
              tags: { ...tags },
              launchedAt: this.now(),
            });
          }
          out.Instances?.push({
            InstanceIds: ids,
            InstanceType: type as never,
            Lifecycle: market === "spot" ? "spot" : "on-demand",
            LaunchTemplateAndOverrides: {
              Overrides: { InstanceType: type as never, SubnetId: override.SubnetId, AvailabilityZone: az },
            },
          });
          left -= take;
        } else if (left > 0) {
          out.Errors?.push({
            ErrorCode: "InsufficientInstanceCapacity",
            ErrorMessage: `There is no ${market} capacity for ${type} in ${az}.`,
            Lifecycle: market === "spot" ? "spot" : "on-demand",
            LaunchTemplateAndOverrides: {
              Overrides: { InstanceType: type as never, SubnetId: override.SubnetId },
            },
          });
        }
      }
    }
    run.take(target - left);
    if (input.ClientToken) this.tokens.set(tokenKey, out);
    return out;
  }

  private describe(
    region: string,
    input: { Filters?: Array<{ Name?: string; Values?: string[] }> },
  ): DescribeInstancesCommandOutput {
    this.admit(region, "DescribeInstances");
    const ids = input.Filters?.find((f) => f.Name === "instance-id")?.Values ?? [];
    const found = ids
      .map((id) => this.instances.get(id))
      .filter((i): i is SimInstance => i !== undefined && i.region === region);
    return {
      $metadata: {},
      Reservations: [
        {
          Instances: found.map((i) => ({
            InstanceId: i.ec2Id,
            InstanceType: i.instanceType as never,
            State: { Name: i.state },
            ...(i.stateReason ? { StateReason: i.stateReason } : {}),
            Placement: { AvailabilityZone: i.az },
            ...(i.market === "spot" ? { InstanceLifecycle: "spot" as const } : {}),
          })),
        },
      ],
    };
  }

  private terminate(region: string, ids: readonly string[]): unknown {
    this.admit(region, "TerminateInstances");
    const unknown = ids.filter((id) => this.instances.get(id)?.region !== region);
    if (unknown.length > 0) {
      throw ec2Error("InvalidInstanceID.NotFound", `The instance IDs '${unknown.join(", ")}' do not exist`);
    }
    for (const id of ids)
      this.end(
        this.instances.get(id) as SimInstance,
        "Client.UserInitiatedShutdown",
        "User initiated shutdown",
      );
    return { $metadata: {}, TerminatingInstances: ids.map((InstanceId) => ({ InstanceId })) };
  }

  private end(i: SimInstance, code: string, message: string): void {
    if (i.state === "terminated") return;
    i.state = "terminated";
    i.stateReason = { Code: code, Message: message };
    const key = poolKey(i.region, i.az, i.instanceType, i.market);
    this.free.set(key, (this.free.get(key) ?? 0) + 1);
  }

  /** Takes back each live spot instance with probability `rate`; returns their EC2 ids. */
  preempt(rate: number): string[] {
    this.refresh();
    const taken: string[] = [];
    for (const i of this.instances.values()) {
      if (i.state !== "terminated" && i.market === "spot" && this.o.random() < rate) {
        this.end(
          i,
          "Server.SpotInstanceTermination",
          "Server.SpotInstanceTermination: Spot instance termination",
        );
        taken.push(i.ec2Id);
      }
    }
    return taken;
  }

  /** Instances not terminated (pending or running). */
  live(): SimInstance[] {
    this.refresh();
    return [...this.instances.values()].filter((i) => i.state !== "terminated");
  }

  state(ec2Id: string): SimInstance["state"] | undefined {
    this.refresh();
    return this.instances.get(ec2Id)?.state;
  }
}

/** A clock the test or benchmark moves; `sleep` advances it (no real waiting). */
export class SimClock implements Clock {
  constructor(public t: number) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  sleep = async (ms: number): Promise<void> => {
    this.t += ms;
  };
}

/** Mulberry32: a small seeded PRNG, so a simulated run is the same every time. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What one simulated agent is doing: its task, and the step at which it finishes. */
interface AgentWork {
  task: TaskRecord;
  doneAt: number;
}

export interface SimAgentsOptions {
  store: StateStore;
  sweep: SweepRecord;
  sim: SimEc2;
  clock: Clock;
  random: () => number;
  /** A task runs for this many steps, uniformly: [min, max]. @default [2, 5] */
  taskSteps?: readonly [number, number];
}

/**
 * The agents of a sweep's instances, simulated: each instance whose EC2 instance runs is an
 * agent that heartbeats (per instance, every 2 × lease, not per task), claims one task at a
 * time, renews its lease when less than a minute is left, and finishes it as succeeded, all
 * through the real store with the same conditional writes the real agent makes. An agent whose
 * instance is gone stops; its task is left to its lease, as on EC2.
 */
export class SimAgents {
  /** Successful finishing writes per task index (each must be exactly 1). */
  readonly finishedBy = new Map<number, number>();
  private readonly working = new Map<string, AgentWork>();

  constructor(private readonly o: SimAgentsOptions) {}

  async step(step: number): Promise<void> {
    const { store, sweep, sim } = this.o;
    const { sweepId, shardCount, spec } = sweep;
    const now = this.o.clock.now();
    const [minSteps, maxSteps] = this.o.taskSteps ?? [2, 5];
    const records = (await store.listInstances(sweepId)).filter(
      (i) =>
        i.status !== "terminated" && i.providerRef !== undefined && sim.state(i.providerRef) === "running",
    );
    const alive = new Set(records.map((r) => r.instanceId));
    for (const id of [...this.working.keys()]) if (!alive.has(id)) this.working.delete(id);
    const idle: InstanceRecord[] = [];
    const lost = (error: unknown) => {
      if (!(error instanceof ConditionFailedError)) throw error;
    };
    await mapLimit(records, 32, async (instance) => {
      if (instance.heartbeatAt === undefined || now - instance.heartbeatAt >= 2 * spec.lease) {
        try {
          await store.updateInstance(
            sweepId,
            instance.instanceId,
            { status: ["launching", "running"] },
            { status: "running", heartbeatAt: now },
          );
        } catch (error) {
          lost(error); // terminated by the control plane: the agent stops
          return;
        }
      }
      const work = this.working.get(instance.instanceId);
      const mine = (t: TaskRecord) => ({
        status: "running" as const,
        attempt: t.attempt,
        leaseOwner: instance.instanceId,
      });
      if (work && work.doneAt <= step) {
        this.working.delete(instance.instanceId);
        const t = work.task;
        try {
          await store.updateTask(sweepId, t.index, shardCount, mine(t), {
            status: "succeeded",
            exitCode: 0,
            leaseOwner: null,
            leaseExpiresAt: null,
            finishedAt: now,
            updatedAt: now,
          });
          this.finishedBy.set(t.index, (this.finishedBy.get(t.index) ?? 0) + 1);
        } catch (error) {
          lost(error);
        }
      } else if (work) {
        if ((work.task.leaseExpiresAt ?? 0) - now < 60_000) {
          try {
            work.task = await store.updateTask(sweepId, work.task.index, shardCount, mine(work.task), {
              leaseExpiresAt: now + spec.lease,
            });
          } catch (error) {
            lost(error);
            this.working.delete(instance.instanceId);
          }
        }
        return;
      }
      idle.push(instance);
    });
    // Idle agents claim the oldest ready tasks, one each.
    const candidates: TaskRecord[] = [];
    for (let shard = 0; shard < shardCount && candidates.length < idle.length; shard++) {
      candidates.push(
        ...(await store.listPendingTasks(sweepId, shard, {
          readyBy: now,
          limit: idle.length - candidates.length,
        })),
      );
    }
    await mapLimit(idle.slice(0, candidates.length), 32, async (instance) => {
      const task = candidates.pop() as TaskRecord;
      try {
        const claimed = await store.updateTask(
          sweepId,
          task.index,
          shardCount,
          { status: "pending", attempt: task.attempt },
          {
            status: "running",
            attempt: task.attempt + 1,
            leaseOwner: instance.instanceId,
            leaseExpiresAt: now + spec.lease,
            startedAt: now,
            updatedAt: now,
          },
        );
        const steps = minSteps + Math.floor(this.o.random() * (maxSteps - minSteps + 1));
        this.working.set(instance.instanceId, { task: claimed, doneAt: step + steps });
      } catch (error) {
        lost(error);
      }
    });
  }
}

/** A one-A10G offer (g5/g6-like: 4 vCPUs, 16 GiB) at `price`, for catalogs made up in tests. */
export function a10gOffer(
  region: string,
  az: string,
  instanceType: string,
  market: Offer["market"],
  price: number,
  priceSource = "snapshot test",
): Offer {
  return {
    instanceType,
    region,
    az,
    gpuName: "A10G",
    gpuMaker: "NVIDIA",
    gpus: 1,
    vcpus: 4,
    memoryGiB: 16,
    arch: "x86_64",
    market,
    pricePerHour: price,
    priceSource,
  };
}

/**
 * A small synthetic catalog for scale runs: two AZs × `types` per region, spot and on-demand,
 * cheapest spot first; `spotCapacity(region)` instances per spot pool, 1,000 per on-demand pool.
 */
export function syntheticCatalog(
  regions: readonly string[],
  types: readonly string[],
  spotCapacity: (region: string) => number,
  priceSource: string,
): { offers: Offer[]; capacity: Record<string, number> } {
  const offers: Offer[] = [];
  const capacity: Record<string, number> = {};
  regions.forEach((region, r) => {
    for (const z of [1, 2]) {
      const az = `${region.replace(/-/g, "")}-az${z}`;
      types.forEach((instanceType, t) => {
        for (const market of ["spot", "on-demand"] as const) {
          const price = (market === "spot" ? 0.4 : 1) + r * 0.01 + t * 0.05 + z * 0.001;
          offers.push(a10gOffer(region, az, instanceType, market, price, priceSource));
          capacity[poolKey(region, az, instanceType, market)] =
            market === "spot" ? spotCapacity(region) : 1000;
        }
      });
    }
  });
  offers.sort((a, b) =>
    a.market === b.market ? a.pricePerHour - b.pricePerHour : a.market === "spot" ? -1 : 1,
  );
  return { offers, capacity };
}
