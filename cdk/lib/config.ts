/**
 * The CDK app's settings: CDK context (`-c spawn:region=us-east-1`, or `context` in cdk.json),
 * validated once, with errors that name the context key. Everything has a default, so `npx cdk
 * synth` works with no context and no credentials.
 */
import { z } from "zod";
import { DEFAULT_STACK_NAME, SPAWN_VERSION } from "#providers/aws/stack.js";

const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;
const AZ = /^[a-z]{2}(-[a-z]+)+-\d+[a-z]$/;

/** A list from context: a JSON array, or a comma-separated string as `-c key=a,b` passes it. */
const list = (item: z.ZodString) =>
  z.preprocess(
    (value) =>
      typeof value === "string"
        ? value
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean)
        : value,
    z.array(item),
  );

export const SpawnConfig = z.strictObject({
  /** `spawn:stackName`: CloudFormation stack name; also the table prefix (`<name>-`) and resource names. */
  stackName: z
    .string()
    .regex(
      /^[a-z][a-z0-9-]{0,19}$/,
      "must be 1-20 lowercase letters, digits or hyphens, starting with a letter",
    )
    .prefault(DEFAULT_STACK_NAME),
  /**
   * `spawn:region`: the home region (tables, buckets, Lambdas, bus). @default CDK_DEFAULT_REGION
   * (the profile's region); without either the stack is region-agnostic and can only be synthesized
   * and deployed alone.
   */
  homeRegion: z.string().regex(REGION, "must be an AWS region such as us-east-1").optional(),
  /** `spawn:launchRegions`: more regions to launch instances in; each gets a `<stack>-<region>` stack. */
  launchRegions: list(z.string().regex(REGION, "must list AWS regions such as us-west-2")).prefault([]),
  /**
   * `spawn:azs:<region>`: the availability zones to make subnets in. @default the region's first
   * three (CloudFormation `Fn::GetAZs`); name them all to launch in every zone of a larger region.
   */
  azs: z
    .record(z.string(), list(z.string().regex(AZ, "must list availability zones such as us-east-1a")))
    .prefault({}),
  /** `spawn:ami`: `dlami` (stock Deep Learning AMI) or `spawn` (the AMI `spawn ami build` makes). */
  ami: z.enum(["dlami", "spawn"]).prefault("dlami"),
  /** `spawn:rootVolumeGiB`: root volume of every instance (the DLAMI needs at least 75 GiB). */
  rootVolumeGiB: z.coerce.number().int().min(75).max(16_384).prefault(150),
  /**
   * Instance hostnames (docs/dns.md): the Route 53 hosted zone the dns-updater writes to, its
   * name, and AWS's identity certificates (a JSON file, region → PEM, copied from the EC2 user
   * guide). `spawn:hostedZoneId`, `spawn:dnsZone`, `spawn:identityCertificates`: all three, or
   * none (no DNS).
   */
  dns: z
    .strictObject({
      hostedZoneId: z
        .string()
        .regex(/^Z[A-Z0-9]{1,32}$/, "must be a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ"),
      zoneName: z
        .string()
        .transform((name) => name.toLowerCase().replace(/\.$/, ""))
        .pipe(
          z
            .string()
            .regex(
              /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/,
              "must be a domain name such as spawn.example.com",
            ),
        ),
      certificatesFile: z.string().min(1, "must be the path of a JSON file: region → PEM"),
    })
    .optional(),
  /**
   * `spawn:dashboardDomainPrefix`: the dashboard's Cognito hosted UI prefix
   * (`<prefix>.auth.<region>.amazoncognito.com`), unique in the region. @default `<stackName>-<account id>`
   */
  dashboardDomainPrefix: z
    .string()
    .regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, "must be 1-63 lowercase letters, digits or hyphens")
    .refine((v) => !/aws|amazon|cognito/.test(v), "must not contain aws, amazon or cognito")
    .optional(),
  /** Recorded in the `SpawnVersion` output and used for artifact keys; the package version. */
  version: z.string().min(1).prefault(SPAWN_VERSION),
});
export type SpawnConfig = z.infer<typeof SpawnConfig>;

/** Context key for each field (`azs` is per region: `spawn:azs:<region>`). */
const CONTEXT_KEYS = {
  stackName: "spawn:stackName",
  homeRegion: "spawn:region",
  launchRegions: "spawn:launchRegions",
  ami: "spawn:ami",
  rootVolumeGiB: "spawn:rootVolumeGiB",
  dashboardDomainPrefix: "spawn:dashboardDomainPrefix",
} as const;

/** Context key of each field of `dns`. */
const DNS_CONTEXT_KEYS = {
  hostedZoneId: "spawn:hostedZoneId",
  zoneName: "spawn:dnsZone",
  certificatesFile: "spawn:identityCertificates",
} as const;

/** Reads context through `get` (a construct node's `tryGetContext`), validated; errors name the key. */
export function readConfig(
  get: (key: string) => unknown,
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<z.input<typeof SpawnConfig>> = {},
): SpawnConfig {
  const raw: Record<string, unknown> = {};
  for (const [field, key] of Object.entries(CONTEXT_KEYS)) {
    const value = get(key);
    if (value !== undefined) raw[field] = value;
  }
  raw.homeRegion ??= env.CDK_DEFAULT_REGION;
  const dns = Object.entries(DNS_CONTEXT_KEYS).filter(([, key]) => get(key) !== undefined);
  if (dns.length > 0) {
    const missing = Object.values(DNS_CONTEXT_KEYS).filter((key) => get(key) === undefined);
    if (missing.length > 0)
      throw new Error(
        `invalid spawn CDK context: hostnames need ${Object.values(DNS_CONTEXT_KEYS).join(", ")} together; missing ${missing.join(", ")}`,
      );
    raw.dns = Object.fromEntries(dns.map(([field, key]) => [field, get(key)]));
  }
  const regions = [
    raw.homeRegion,
    ...(SpawnConfig.shape.launchRegions.safeParse(raw.launchRegions).data ?? []),
  ];
  const azs: Record<string, unknown> = {};
  for (const region of regions) {
    if (typeof region !== "string") continue;
    const value = get(`spawn:azs:${region}`);
    if (value !== undefined) azs[region] = value;
  }
  raw.azs = azs;
  const parsed = SpawnConfig.safeParse({ ...raw, ...overrides });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const [field, ...rest] = issue.path.map(String);
      const key =
        field === "azs"
          ? `spawn:azs:${rest[0]}`
          : field === "dns"
            ? (DNS_CONTEXT_KEYS[rest[0] as keyof typeof DNS_CONTEXT_KEYS] ?? "dns")
            : (CONTEXT_KEYS[field as keyof typeof CONTEXT_KEYS] ?? field);
      return `${key}: ${issue.message}`;
    });
    throw new Error(`invalid spawn CDK context: ${problems.join("; ")}`);
  }
  const config = parsed.data;
  if (config.launchRegions.length > 0 && !config.homeRegion) {
    throw new Error(
      "spawn:launchRegions needs a home region: pass -c spawn:region=<region> or set a region in your AWS profile",
    );
  }
  if (config.homeRegion && config.launchRegions.includes(config.homeRegion)) {
    throw new Error(
      `spawn:launchRegions must not repeat the home region ${config.homeRegion}: the home stack launches there already`,
    );
  }
  return config;
}
