/**
 * cdk-nag acknowledgements that name exactly the finding they answer. A wildcard finding
 * (AwsSolutions-IAM5) is per resource string, rendered the way cdk-nag renders it: tokens become
 * `<LogicalId.Attribute>` and `<AWS::Pseudo>`. Computing the id from the same value the policy
 * uses keeps acknowledgements right when logical ids change.
 */
import { Stack, Validations } from "aws-cdk-lib";
import type { IConstruct } from "constructs";

function render(value: unknown): string {
  if (typeof value === "string") return value;
  if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if (Array.isArray(o["Fn::Join"])) {
      const [separator, parts] = o["Fn::Join"] as [string, unknown[]];
      return parts.map(render).join(separator);
    }
    if (typeof o.Ref === "string") return `<${o.Ref}>`;
    if (Array.isArray(o["Fn::GetAtt"])) return `<${(o["Fn::GetAtt"] as string[]).join(".")}>`;
  }
  throw new Error(`cannot name ${JSON.stringify(value)} as cdk-nag does`);
}

/** The finding id cdk-nag reports for a wildcard in `resource` on a policy in `scope`'s stack. */
export function wildcardFinding(scope: IConstruct, resource: string): string {
  return `AwsSolutions-IAM5[Resource::${render(Stack.of(scope).resolve(resource))}]`;
}

/** Acknowledges the wildcard finding of every resource in `resources` that has a `*`, with one reason. */
export function acknowledgeWildcards(
  construct: IConstruct,
  resources: readonly string[],
  reason: string,
): void {
  const findings = resources.map((r) => wildcardFinding(construct, r)).filter((id) => id.includes("*"));
  for (const id of new Set(findings)) Validations.of(construct).acknowledge({ id, reason });
}
