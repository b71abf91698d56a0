/**
 * The container's CPU limit as the Docker provider spells it. Pure.
 *
 * `cpus` of docker_container (kreuzwerker/terraform-provider-docker v4.5.0, the version
 * @pulumi/docker 5.2.0 wraps) forces replacement (internal/provider/resource_docker_container.go,
 * schema `"cpus"`: ForceNew), is parsed on create with docker/cli's `opts.ParseCPUs` (a decimal
 * times 1e9, which must come out whole: resource_docker_container_funcs.go
 * `resourceDockerContainerCreate`), and is read back from HostConfig.NanoCPUs with
 * `nanoInt64ToDecimalString` (internal/provider/helpers.go, called from
 * `resourceDockerContainerRead`), which has its own spelling: 1e9 -> "1.0", 1.5e9 -> "1.5",
 * 10e9 -> "10." and 0.05e9 -> "0.1". Any other spelling of the same amount ("1", "1.50") would
 * be a different string in the state after every create, so a replacement on every `up`. The
 * program declares that spelling, and refuses amounts whose spelling means another amount.
 */

/** Nanoseconds of CPU per second of a decimal like "1.5" (ParseCPUs), or undefined. */
export function cpusNano(value: string): bigint | undefined {
  const m = /^([0-9]+)(?:\.([0-9]*))?$/.exec(value);
  if (!m || (m[1] === "" && !m[2])) return undefined;
  const fraction = m[2] ?? "";
  if (fraction.replace(/0+$/, "").length > 9) return undefined;
  return BigInt(m[1]) * 1_000_000_000n + BigInt((fraction + "000000000").slice(0, 9));
}

/**
 * `nanoInt64ToDecimalString` of the provider (helpers.go): the decimal with nine places; if it
 * holds exactly nine "0" characters, rounded to one place; otherwise without trailing zeros.
 */
export function dockerCpusText(nano: bigint): string {
  if (nano === 0n) return "0";
  const whole = nano / 1_000_000_000n;
  const nine = `${whole}.${(nano % 1_000_000_000n).toString().padStart(9, "0")}`;
  if ((nine.match(/0/g) ?? []).length === 9) {
    // big.Rat FloatString(1): rounded half away from zero to one decimal place.
    const tenths = (nano + 50_000_000n) / 100_000_000n;
    return `${tenths / 10n}.${tenths % 10n}`;
  }
  return nine.replace(/0+$/, "");
}
