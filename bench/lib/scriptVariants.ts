/**
 * Host script variants for the reload experiments: the script's text with a line changed,
 * sent on stdin as usual (host/ itself is never edited). Each edit fails loudly when the line
 * it changes is not there exactly once.
 */
import { hostScriptText } from "../../test/harness/hostScript";

const POLL_LINE = /^HEALTH_POLL=([0-9.]+)$/gm;

/** The seconds the shipped host script waits between two health probes (its HEALTH_POLL). */
export function shippedPoll(): string {
  return pollLine(hostScriptText())[1];
}

function pollLine(text: string): RegExpMatchArray {
  const found = [...text.matchAll(POLL_LINE)];
  if (found.length !== 1) {
    throw new Error(
      `host/touchdeploy.sh has ${found.length} \`HEALTH_POLL=SECONDS\` lines, expected 1 (the poll)`,
    );
  }
  return found[0];
}

/** The host script with its health check polling every `seconds` instead of HEALTH_POLL. */
export function scriptWithPoll(seconds: string): string {
  const text = hostScriptText();
  pollLine(text);
  return text.replace(POLL_LINE, `HEALTH_POLL=${seconds}`);
}
