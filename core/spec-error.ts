/** Spec validation errors, shared by the spec schema and the validators it calls. */
import { AbortError } from "./errors.js";

export interface SpecIssue {
  path: string;
  message: string;
}

/** A spec that failed validation; exit code 2, nothing created. */
export class SpecError extends AbortError {
  override name = "SpecError";
  constructor(
    readonly issues: SpecIssue[],
    source?: string,
  ) {
    super(
      `invalid spec${source ? ` ${source}` : ""}:\n${issues.map((i) => `  ${i.path || "(root)"}: ${i.message}`).join("\n")}`,
      "run `spawn schema` for the full schema, or see docs/spec.md",
    );
  }
}
