/**
 * The host-side release engine (`host/touchdeploy.sh`) as the commands send it: the script goes
 * on stdin, the arguments are shell-quoted on the command line. Pure apart from reading the
 * script once.
 */
import * as fs from "fs";
import * as path from "path";
import { quote } from "shell-quote";

/** Path of the host script in this repository. */
export const HOST_SCRIPT_PATH = path.join(__dirname, "..", "host", "touchdeploy.sh");

/** The script text every command sends on stdin. */
export function readHostScript(file: string = HOST_SCRIPT_PATH): string {
  return fs.readFileSync(file, "utf8");
}

export type HostScriptSubcommand = "init" | "prepare" | "activate" | "deploy" | "rollback";

/** Options of one invocation, `--name value`; undefined and empty values are left out. */
export type HostScriptOptions = Record<string, string | number | undefined>;

/**
 * The command line that runs the script read from stdin: `bash -s -- SUBCOMMAND --opt value...`.
 * Every word is quoted with shell-quote, so no value is ever interpreted by the shell.
 */
export function hostScriptCommand(
  subcommand: HostScriptSubcommand,
  options: HostScriptOptions,
): string {
  const words: string[] = [subcommand];
  for (const [name, value] of Object.entries(options)) {
    if (value !== undefined && value !== "") {
      words.push(`--${name}`, String(value));
    }
  }
  return `bash -s -- ${quote(words)}`;
}
