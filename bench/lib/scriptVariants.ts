/**
 * Host script variants for the reload experiments: the script's text with a line changed,
 * sent on stdin as usual (host/ itself is never edited). Each edit fails loudly when the line
 * it changes is not there exactly once.
 */
import { hostScriptText } from "../../test/e2e/support/hostScript";

/** The host script with its health check polling every `seconds` instead of every 0.2 s. */
export function scriptWithPoll(seconds: string): string {
  const text = hostScriptText();
  // The one `sleep 0.2` is wait_served's poll (possibly with a redirection after it).
  const re = /^( +)sleep 0\.2( .*)?$/gm;
  const found = text.match(re) ?? [];
  if (found.length !== 1) {
    throw new Error(
      `host/touchdeploy.sh has ${found.length} \`sleep 0.2\` lines, expected 1 (the poll)`,
    );
  }
  return text.replace(
    re,
    (_line, indent: string, rest: string | undefined) => `${indent}sleep ${seconds}${rest ?? ""}`,
  );
}
