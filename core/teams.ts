/**
 * Teams on the AWS dashboard: who may see a sweep, and the records the team store keeps
 * (memberships, shares, comments). Pure: the store is providers/dynamodb/team-store.ts, the API
 * lambdas/dashboard-api. A sweep belongs to its `team` (DEFAULT_TEAM when it has none) and to
 * every team it was shared with; a user sees the sweeps of the teams they are a member of.
 */
import { z } from "zod";
import { AbortError } from "./errors.js";
import type { SweepRecord } from "./model.js";

/** The team of a sweep launched without `team`, and the team the first user of a stack administers. */
export const DEFAULT_TEAM = "default";

/** Team names: short, lowercase, safe in URLs and keys. */
export const TeamName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "must be 1-63 lowercase letters, digits, '.', '_' or '-'");

export const TeamRole = z.enum(["admin", "member"]);
export type TeamRole = z.infer<typeof TeamRole>;

/** A user's membership of one team. `user` is the lowercased e-mail of the Cognito identity. */
export const Membership = z.object({
  team: TeamName,
  user: z.string().min(1),
  role: TeamRole,
  addedAt: z.number(),
  addedBy: z.string(),
});
export type Membership = z.infer<typeof Membership>;

/** A sweep shared with a team beyond its own. */
export const Share = z.object({
  sweepId: z.string(),
  team: TeamName,
  /** The sweep's createdAt, so a team's shared sweeps list newest first. */
  sweepCreatedAt: z.number(),
  sharedAt: z.number(),
  sharedBy: z.string(),
});
export type Share = z.infer<typeof Share>;

/** Longest comment body, in characters. */
export const MAX_COMMENT_CHARS = 4000;

/** A comment on a sweep. The body is plain text: it is never interpreted as HTML anywhere. */
export const Comment = z.object({
  sweepId: z.string(),
  commentId: z.string(),
  author: z.string(),
  body: z.string().min(1).max(MAX_COMMENT_CHARS),
  createdAt: z.number(),
});
export type Comment = z.infer<typeof Comment>;

/** Where memberships, shares and comments are kept (providers/dynamodb/team-store.ts). */
export interface TeamStore {
  addMember(membership: Membership): Promise<void>;
  removeMember(team: string, user: string): Promise<void>;
  teamsOf(user: string): Promise<Membership[]>;
  membersOf(team: string): Promise<Membership[]>;
  /** False when the sweep was already shared with the team. */
  share(share: Share): Promise<boolean>;
  sharesOf(sweepId: string): Promise<Share[]>;
  /** Newest sweep first. */
  sharedWith(team: string, limit?: number): Promise<Share[]>;
  addComment(comment: Comment): Promise<void>;
  /** Oldest first. */
  comments(sweepId: string): Promise<Comment[]>;
  /** Makes `user` admin of DEFAULT_TEAM if nobody ever was the first admin; true when `user` is that admin. */
  claimFirstAdmin(user: string, now: number): Promise<boolean>;
}

/** The team a sweep was launched into. */
export function teamOf(sweep: Pick<SweepRecord, "team">): string {
  return sweep.team ?? DEFAULT_TEAM;
}

/** Whether a member of `teams` may see `sweep`, given the teams it was shared with. */
export function canSee(
  sweep: Pick<SweepRecord, "team">,
  teams: ReadonlySet<string>,
  sharedWith: readonly string[],
): boolean {
  return teams.has(teamOf(sweep)) || sharedWith.some((t) => teams.has(t));
}

/** A comment body as it is stored: trimmed, non-empty, at most MAX_COMMENT_CHARS; else an AbortError naming the field. */
export function commentBody(raw: unknown): string {
  const body = typeof raw === "string" ? raw.trim() : "";
  if (body === "") throw new AbortError("body must be a non-empty string", 'send {"body": "…"}');
  if (body.length > MAX_COMMENT_CHARS)
    throw new AbortError(`body must be at most ${MAX_COMMENT_CHARS} characters, got ${body.length}`);
  return body;
}

/** A team name from user input, or an AbortError naming the field and value. */
export function teamName(raw: unknown, field = "team"): string {
  const parsed = TeamName.safeParse(raw);
  if (!parsed.success)
    throw new AbortError(
      `${field} ${JSON.stringify(raw)} ${parsed.error.issues[0]?.message ?? "is invalid"}`,
    );
  return parsed.data;
}

/**
 * The owner recorded on a schedule or alert that belongs to a team (the AWS dashboard makes
 * them; docs/adr/0039-dashboard-schedules-alerts-downloads-on-aws.md): `team:<name>`. Team names
 * have no `:`, so it cannot be mistaken for another team's; the CLI reaches them with
 * `SPAWN_OWNER=team:<name>`.
 */
export function teamOwner(team: string): string {
  return `team:${team}`;
}

/** The team a schedule or alert owner names (`team:<name>`), or undefined for a user's own. */
export function ownerTeam(owner: string): string | undefined {
  const team = owner.startsWith("team:") ? owner.slice("team:".length) : undefined;
  return team !== undefined && TeamName.safeParse(team).success ? team : undefined;
}
