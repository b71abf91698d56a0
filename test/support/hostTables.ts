/**
 * host/touchdeploy.sh's own tables, read from the script's text: one parser for every test that
 * compares the program, the contract or the docs with them (the script prints --help from the
 * same tables).
 */

/** A row of the OPTIONS table: `name | VALUE | default | meaning` (default "" = none). */
export interface ScriptOption {
  name: string;
  value: string;
  default: string;
}

/** A row of the SUBCOMMANDS table: name, old name ("" = none), its options (`@sub` expanded not). */
export interface ScriptSubcommand {
  name: string;
  alias: string;
  required: string[];
  options: string[];
}

/** The lines between `NAME=(` and its closing `)` (empty when the table is missing). */
function tableRows(script: string, table: string): string[] {
  const body = new RegExp(`^${table}=\\(\\n([\\s\\S]*?)^\\)$`, "m").exec(script)?.[1] ?? "";
  return body
    .split("\n")
    .map((line) => /^\s*'(.*)'$/.exec(line)?.[1])
    .filter((row): row is string => row !== undefined);
}

const cells = (row: string): string[] => row.split("|").map((c) => c.trim());

export function scriptOptions(script: string): ScriptOption[] {
  return tableRows(script, "OPTIONS").map((row) => {
    const [name, value, dflt] = cells(row);
    return { name, value, default: dflt };
  });
}

export function scriptSubcommands(script: string): ScriptSubcommand[] {
  return tableRows(script, "SUBCOMMANDS").map((row) => {
    const [name, alias, required, options] = cells(row);
    const words = (text: string) => text.split(/\s+/).filter(Boolean);
    return { name, alias, required: words(required), options: words(options) };
  });
}
