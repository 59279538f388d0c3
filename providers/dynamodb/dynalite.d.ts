/** Types for dynalite 4 (it ships none): the DynamoDB stand-in of the local provider and the tests. */
declare module "dynalite" {
  import type { Server } from "node:http";

  interface DynaliteOptions {
    /** LevelDB directory; in memory when omitted. */
    path?: string;
    /** How long tables stay CREATING / DELETING / UPDATING (default 500 ms each). */
    createTableMs?: number;
    deleteTableMs?: number;
    updateTableMs?: number;
    maxItemSizeKb?: number;
    ssl?: boolean;
    key?: string;
    cert?: string;
    ca?: string;
    verbose?: boolean;
    debug?: boolean;
  }

  /** An http(s) server; call listen() on it. close() also closes the database. */
  function dynalite(options?: DynaliteOptions): Server;
  export default dynalite;
}
