/** `spawn templates list|show|init`: ready-made specs, with typed variables. */
import { type Command, Option } from "commander";
import { paint, printJson, table } from "../output.js";
import { initTemplate, listTemplates, showTemplate, userTemplatesDir } from "../services/templates.js";

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerTemplates(program: Command): void {
  const templates = program
    .command("templates")
    .description(`ready-made specs from templates/ and ${userTemplatesDir()}`);

  templates
    .command("list")
    .description("every template, with where it comes from")
    .option("--json", "machine-readable output")
    .action(async (opts) => {
      const all = await listTemplates();
      if (opts.json) {
        printJson(
          all.map((t) => ({
            name: t.name,
            source: t.source,
            description: t.description,
            gpu: t.manifest.gpu,
            vars: Object.keys(t.manifest.vars),
          })),
        );
        return;
      }
      process.stdout.write(
        `${table(
          ["template", "source", "gpu", "description"],
          all.map((t) => [t.name, t.source, t.manifest.gpu ? "yes" : "", t.description]),
        )}\n`,
      );
    });

  templates
    .command("show")
    .description("a template's variables, files and spec")
    .argument("<name>")
    .option("--json", "machine-readable output")
    .action(async (name: string, opts) => {
      const { template, specText, files } = await showTemplate(name);
      if (opts.json) {
        printJson({
          name,
          source: template.source,
          description: template.description,
          gpu: template.manifest.gpu,
          vars: template.manifest.vars,
          files,
          spec: specText,
        });
        return;
      }
      const vars = Object.entries(template.manifest.vars);
      process.stdout.write(
        `${paint("bold", name)} (${template.source}): ${template.description}\n\n` +
          (vars.length > 0
            ? `${table(
                ["variable", "type", "default", "description"],
                vars.map(([n, v]) => [
                  n,
                  v.type + (v.choices ? ` (${v.choices.join("|")})` : ""),
                  v.default === undefined ? paint("yellow", "required") : JSON.stringify(v.default),
                  v.description,
                ]),
              )}\n\n`
            : "no variables\n\n") +
          (files.length > 0 ? `files: ${files.join(", ")}\n\n` : "") +
          specText,
      );
    });

  templates
    .command("init")
    .description("copy a template into a directory, with --var values applied")
    .argument("<name>")
    .addOption(
      new Option("--var <name=value>", "set a declared variable (repeatable)").default([]).argParser(collect),
    )
    .option("-o, --output <dir>", "where to write it (default: ./<name>)")
    .option("--json", "machine-readable output")
    .action(async (name: string, opts) => {
      const result = await initTemplate(name, { vars: opts.var, outDir: opts.output });
      if (opts.json) printJson(result);
      else
        process.stdout.write(
          `wrote ${result.specPath} (${result.files.length} file(s))\n  spawn sweep launch ${result.specPath} --dry-run\n`,
        );
    });
}
