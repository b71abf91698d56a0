// Writes Pulumi.yaml from the config schema in components/config.ts, so the declared keys,
// types, defaults and descriptions have one source. test/unit/pulumiYaml.test.ts checks it.
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { CONFIG_SCHEMA, FOREIGN_CONFIG_SCHEMA, NAMESPACE } from "../components/config";

export function renderPulumiYaml(): string {
  const config: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(CONFIG_SCHEMA)) {
    config[`${NAMESPACE}:${key}`] =
      schema.type === "array" ? { ...schema, items: { type: "string" } } : schema;
  }
  Object.assign(config, FOREIGN_CONFIG_SCHEMA);
  const project = {
    name: "touchdeploy",
    description:
      "Code-only deploys of a uWSGI app to long-lived Docker containers: a new commit replaces a command, not the container.",
    runtime: { name: "nodejs", options: { typescript: true, packagemanager: "npm" } },
    config,
  };
  return (
    "# Generated from components/config.ts by `npm run gen:pulumi-yaml`; edit the schema there.\n" +
    stringify(project, { lineWidth: 0 })
  );
}

if (require.main === module) {
  fs.writeFileSync(path.join(__dirname, "..", "Pulumi.yaml"), renderPulumiYaml());
}
