// The public API: the components and their argument types. Internals (config parsing, the
// host script's command lines, fingerprints, ...) are imported from their own modules.
export { AppDeployment } from "./appDeployment";
export type { AppDeploymentArgs, AppImage, HostSummary, NamedHostArgs } from "./appDeployment";
export { HostDeployment } from "./hostDeployment";
export type {
  FetchKey,
  HostArgs,
  HostDeploymentArgs,
  HostTargetInput,
  RuntimeImageSource,
  SourceArgs,
} from "./hostDeployment";
export { GitHubDeployKey } from "./githubDeployKey";
export type { GitHubDeployKeyArgs } from "./githubDeployKey";
export type { ReleaseConfig, RolloutConfig } from "./config";
