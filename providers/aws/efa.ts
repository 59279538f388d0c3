/**
 * Which instance types have an Elastic Fabric Adapter, and what `resources.efa` asks of a spec
 * (docs/adr/0028-gangs-on-ec2.md). No SDK here: the CLI checks specs with it at plan time.
 */

import type { SweepSpec } from "#core/spec.js";
import type { SpecIssue } from "#core/spec-error.js";

/**
 * Instance types with Elastic Fabric Adapter support among the accelerated types spawn offers.
 * Source: the EC2 User Guide's "Supported instance types" list for EFA (accelerated computing),
 * as known when this was written, not read from AWS (the price catalog has no EFA column); a
 * type AWS adds later is refused until it is listed here. Check a type with
 * `aws ec2 describe-instance-types --instance-types <type> --query 'InstanceTypes[].NetworkInfo.EfaSupported'`.
 */
export const EFA_INSTANCE_TYPES: ReadonlySet<string> = new Set([
  "g4dn.8xlarge",
  "g4dn.12xlarge",
  "g4dn.16xlarge",
  "g4dn.metal",
  "p3dn.24xlarge",
  "p4d.24xlarge",
  "p4de.24xlarge",
  "p5.48xlarge",
  "p5e.48xlarge",
  "p5en.48xlarge",
  ...["8xlarge", "12xlarge", "16xlarge", "24xlarge", "48xlarge"].flatMap((size) => [
    `g5.${size}`,
    `g6.${size}`,
    `g6e.${size}`,
  ]),
  "trn1.32xlarge",
  "trn1n.32xlarge",
]);

/** Whether an instance type has EFA (see {@link EFA_INSTANCE_TYPES}). */
export function supportsEfa(instanceType: string): boolean {
  return EFA_INSTANCE_TYPES.has(instanceType);
}

/** Whether a sweep launches with EFA interfaces: a gang sweep that asks for them. */
export function wantsEfa(spec: Pick<SweepSpec, "nodes" | "resources">): boolean {
  return spec.nodes > 1 && spec.resources.efa;
}

const isGlob = (pattern: string) => /[*?]/.test(pattern);

/**
 * What is wrong with `resources.efa` in a spec, checked before anything is created: EFA without a
 * gang, a named instance type without EFA, or (given the types the rest of the spec allows)
 * none that has it. Globs are not errors: a launch uses only the EFA types they match.
 */
export function efaIssues(
  spec: Pick<SweepSpec, "nodes" | "resources">,
  allowedTypes?: readonly string[],
): SpecIssue[] {
  if (!spec.resources.efa) return [];
  const path = "resources.efa";
  if (spec.nodes <= 1)
    return [
      { path, message: "EFA connects the members of a gang: set nodes above 1, or drop resources.efa" },
    ];
  const named = (spec.resources.instance_types ?? []).filter((t) => !isGlob(t));
  const without = named.filter((t) => !supportsEfa(t));
  const known = `types with EFA: ${[...EFA_INSTANCE_TYPES].join(", ")}`;
  if (without.length > 0)
    return [
      {
        path,
        message: `${without.join(", ")} ${without.length === 1 ? "has" : "have"} no EFA; drop ${without.length === 1 ? "it" : "them"} from resources.instance_types or drop resources.efa (${known})`,
      },
    ];
  const types = [...new Set(allowedTypes ?? [])];
  if (types.length > 0 && !types.some(supportsEfa))
    return [
      {
        path,
        message: `none of the instance types the spec allows has EFA (${types.slice(0, 8).join(", ")}${types.length > 8 ? ", …" : ""}); ${known}`,
      },
    ];
  return [];
}
