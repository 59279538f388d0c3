/**
 * The AWS dashboard's teams on DynamoDB: one table, `<prefix>teams` (docs/data-model.md), with
 * three kinds of item, each written with a single-item write:
 *
 * | item | pk | sk | teamPk / teamSk (`by-team` index) |
 * |---|---|---|---|
 * | membership | `user#<email>` | `team#<team>` | `team#<team>` / `user#<email>` |
 * | share | `sweep#<id>` | `share#<team>` | `team#<team>` / `sweep#<createdAt>#<id>` |
 * | comment | `sweep#<id>` | `comment#<createdAt>#<commentId>` | — |
 *
 * plus one `stack` / `first-admin` item that makes exactly one user the first admin.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DeleteCommand, DynamoDBDocumentClient, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { Comment, DEFAULT_TEAM, Membership, Share, type TeamStore } from "#core/teams.js";
import { type Item, orderedKey } from "./codec.js";
import { Expression } from "./expressions.js";
import { putIfAbsent, queryAll } from "./requests.js";
import { DEFAULT_TABLE_PREFIX, INDEX, tableNames } from "./tables.js";

const userPk = (user: string) => `user#${user}`;
const teamKey = (team: string) => `team#${team}`;
const sweepPk = (sweepId: string) => `sweep#${sweepId}`;

function strip(item: Item): Item {
  const { pk: _p, sk: _s, teamPk: _tp, teamSk: _ts, ...rest } = item;
  return rest;
}

export class DynamoTeamStore implements TeamStore {
  readonly table: string;
  private readonly doc: DynamoDBDocumentClient;

  constructor(client: DynamoDBClient, prefix: string = DEFAULT_TABLE_PREFIX) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    this.table = tableNames(prefix).teams;
  }

  /** Adds `user` to `team` or changes their role (a put: the latest role wins). */
  async addMember(membership: Membership): Promise<void> {
    const m = Membership.parse(membership);
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: {
          pk: userPk(m.user),
          sk: teamKey(m.team),
          teamPk: teamKey(m.team),
          teamSk: userPk(m.user),
          ...m,
        },
      }),
    );
  }

  async removeMember(team: string, user: string): Promise<void> {
    await this.doc.send(
      new DeleteCommand({ TableName: this.table, Key: { pk: userPk(user), sk: teamKey(team) } }),
    );
  }

  /** The teams `user` belongs to. */
  async teamsOf(user: string): Promise<Membership[]> {
    const items = await this.queryPrefix("pk", userPk(user), "sk", "team#");
    return items.map((i) => Membership.parse(strip(i)));
  }

  /** The members of `team` (through the `by-team` index). */
  async membersOf(team: string): Promise<Membership[]> {
    const items = await this.queryPrefix("teamPk", teamKey(team), "teamSk", "user#", INDEX.teamsByTeam);
    return items.map((i) => Membership.parse(strip(i)));
  }

  /** Shares a sweep with a team; false when it already was. */
  async share(share: Share): Promise<boolean> {
    const s = Share.parse(share);
    return putIfAbsent(
      this.doc,
      this.table,
      {
        pk: sweepPk(s.sweepId),
        sk: `share#${s.team}`,
        teamPk: teamKey(s.team),
        teamSk: `sweep#${orderedKey(s.sweepCreatedAt, s.sweepId, "sweepCreatedAt")}`,
        ...s,
      },
      "sk",
    );
  }

  /** The teams a sweep was shared with (besides its own). */
  async sharesOf(sweepId: string): Promise<Share[]> {
    const items = await this.queryPrefix("pk", sweepPk(sweepId), "sk", "share#");
    return items.map((i) => Share.parse(strip(i)));
  }

  /** Sweeps shared with `team`, newest sweep first. */
  async sharedWith(team: string, limit?: number): Promise<Share[]> {
    const items = await this.queryPrefix("teamPk", teamKey(team), "teamSk", "sweep#", INDEX.teamsByTeam, {
      newestFirst: true,
      ...(limit !== undefined ? { limit } : {}),
    });
    return items.map((i) => Share.parse(strip(i)));
  }

  async addComment(comment: Comment): Promise<void> {
    const c = Comment.parse(comment);
    const written = await putIfAbsent(
      this.doc,
      this.table,
      { pk: sweepPk(c.sweepId), sk: `comment#${orderedKey(c.createdAt, c.commentId, "createdAt")}`, ...c },
      "sk",
    );
    if (!written) throw new Error(`comment ${c.commentId} on ${c.sweepId} already exists`);
  }

  /** A sweep's comments, oldest first. */
  async comments(sweepId: string): Promise<Comment[]> {
    const items = await this.queryPrefix("pk", sweepPk(sweepId), "sk", "comment#");
    return items.map((i) => Comment.parse(strip(i)));
  }

  /**
   * Makes `user` the admin of the `default` team if no user ever was the first admin (one
   * conditional put decides, so two first sign-ins cannot both win). True when `user` is (or
   * already was) that first admin. The stack's user pool has no self sign-up, so the first user
   * to sign in is one an administrator created.
   */
  async claimFirstAdmin(user: string, now: number): Promise<boolean> {
    const key = { pk: "stack", sk: "first-admin" };
    const won = await putIfAbsent(this.doc, this.table, { ...key, user, at: now }, "sk");
    if (!won) {
      const out = await this.doc.send(
        new GetCommand({ TableName: this.table, Key: key, ConsistentRead: true }),
      );
      if (out.Item?.user !== user) return false;
    }
    // Idempotent: also repairs a first claim whose membership write did not happen.
    await this.addMember({ team: DEFAULT_TEAM, user, role: "admin", addedAt: now, addedBy: user });
    return true;
  }

  private async queryPrefix(
    pkName: string,
    pk: string,
    skName: string,
    prefix: string,
    indexName?: string,
    options: { newestFirst?: boolean; limit?: number } = {},
  ): Promise<Item[]> {
    const expr = new Expression();
    return queryAll(
      this.doc,
      {
        TableName: this.table,
        ...(indexName ? { IndexName: indexName } : {}),
        KeyConditionExpression: `${expr.name(pkName)} = ${expr.value(pk)} AND begins_with(${expr.name(skName)}, ${expr.value(prefix)})`,
        ScanIndexForward: !options.newestFirst,
        ...expr.params(),
      },
      options.limit,
    );
  }
}
