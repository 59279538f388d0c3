/** Reading a queue file: YAML or JSON, validated by core/queue.ts with every issue on its line. */
import YAML from "yaml";
import { AbortError } from "#core/errors.js";
import { parseQueue, type QueueFile } from "#core/queue.js";
import { readUserFile } from "../flags.js";

/** Validates the text of a queue file; `source` names it in errors. Throws QueueError or AbortError (exit 2). */
export function parseQueueText(text: string, source: string): QueueFile {
  const lines = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new AbortError(`${source}: ${doc.errors[0]!.message.split("\n")[0]}`, "fix the YAML syntax");
  }
  const lineOf = (path: ReadonlyArray<string | number>): number | undefined => {
    // The deepest node that exists on the path: a missing key is reported on its parent's line.
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      if (YAML.isNode(node) && node.range) return lines.linePos(node.range[0]).line;
    }
    return undefined;
  };
  return parseQueue(doc.toJS({ maxAliasCount: 100 }), { source, lineOf });
}

export async function readQueueFile(path: string): Promise<QueueFile> {
  return parseQueueText(await readUserFile(path, "queue file"), path);
}
