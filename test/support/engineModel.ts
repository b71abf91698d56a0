/**
 * A small model of the Pulumi engine's deployment (pulumi/pulumi v3.248.0,
 * pkg/resource/deploy/step_generator.go and step.go): given what a program registered (as
 * test/support/pulumiProgram.ts records it) and the state of the previous deployment, it decides
 * per resource between same, create, update and replace (create-before-delete or
 * delete-before-replace, with the dependents a delete-before-replace takes along), runs the
 * steps through providers, and deletes what is no longer declared — in the order the declared
 * dependencies allow and no other. `destroy` deletes everything in reverse dependency order.
 *
 * The providers are injected: their diff rules come from providerModels.ts, their
 * create/update/delete are real (test/harness/realize.ts) or fakes (unit tests).
 *
 * Each rule cites where the engine decides it. What the model leaves out: parallelism (steps run
 * one at a time, in an order chosen to expose missing dependencies, see {@link schedule}; after
 * a failure it still runs what may have been running concurrently), refresh, import, read,
 * plans, policy packs, hooks, views, `--target-dependents`, and provider configuration diffs
 * (a changed provider config is refused, not guessed).
 */
import { AliasSpec, mockUrn, plain, Registration } from "./pulumiProgram";
import {
  applyIgnoreChanges,
  asReplace,
  DiffResult,
  diffRuleFor,
  parsePath,
  pathContains,
  UNKNOWN,
} from "./providerModels";

/** Step operations, named as the engine names them (step.go `OpSame`, ...). */
export type StepOp =
  "same" | "create" | "update" | "replace" | "create-replacement" | "delete-replaced" | "delete";

/** One step the model took, in the order it ran. */
export interface Step {
  op: StepOp;
  urn: string;
  type: string;
  name: string;
  custom: boolean;
  /** For replacements: the keys that force it; for updates: the changed keys. */
  keys?: string[];
}

/** `op name` of the steps on custom resources other than providers, in order. */
export function actionsOf(steps: readonly Step[]): string[] {
  return steps.filter((s) => s.custom && !isProviderType(s.type)).map((s) => `${s.op} ${s.name}`);
}

/** What the engine's state (checkpoint) keeps of a resource. */
export interface ResourceState {
  urn: string;
  type: string;
  name: string;
  custom: boolean;
  parentUrn: string;
  /** Provider reference `urn::id`, or "" for the default provider. */
  provider: string;
  id: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
  dependencies: string[];
  propertyDependencies: Record<string, string[]>;
  protect: boolean;
  retainOnDelete: boolean;
  deletedWith: string;
  ignoreChanges: string[];
  replaceOnChanges: string[];
  replacementTrigger: unknown;
  /**
   * Replaced create-before-delete and not deleted yet (the engine's `Delete` flag, set by
   * CreateStep.Apply when replacing): deleted at the end of this or the next deployment.
   */
  delete: boolean;
}

/**
 * The checkpoint: the resources of the last deployment (in the order their steps completed)
 * and old copies still pending deletion. The model never relies on this order for a rule.
 */
export interface Snapshot {
  resources: ResourceState[];
}

export function emptySnapshot(): Snapshot {
  return { resources: [] };
}

/** The operations a provider performs (a provider plugin's Create/Update/Delete). */
export interface ProviderOps {
  create(r: {
    urn: string;
    type: string;
    name: string;
    inputs: Record<string, unknown>;
  }): Promise<{ id: string; outputs: Record<string, unknown> }>;
  update(
    old: ResourceState,
    inputs: Record<string, unknown>,
    diff: DiffResult,
  ): Promise<{ outputs: Record<string, unknown> }>;
  delete(old: ResourceState): Promise<void>;
}

/** Provider operations per resource type (undefined: the model refuses the type). */
export type ProviderRegistry = (type: string) => ProviderOps | undefined;

export interface DeploymentOptions {
  providers: ProviderRegistry;
  /** Like `pulumi up --target`: only these resources (names or URNs) are operated on. */
  targets?: readonly string[];
  /** Called after each step completes (for logging). */
  onStep?: (step: Step) => void;
}

/**
 * A failed deployment: the (first) step that failed, its cause, and every step that ran — the
 * ones before it and those the failure did not stop (see `Deployment.execute`).
 */
export class DeploymentError extends Error {
  constructor(
    readonly failed: Step,
    readonly steps: Step[],
    cause: unknown,
  ) {
    super(
      `${failed.op} ${failed.name} failed: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
}

const ROOT_STACK = "pulumi:pulumi:Stack";

function providerUrn(ref: string): string {
  return ref ? ref.slice(0, ref.lastIndexOf("::")) : "";
}

function isProviderType(type: string): boolean {
  return type.startsWith("pulumi:providers:");
}

/**
 * The order the model realizes registrations in: a topological order of exactly the declared
 * edges — dependencies (explicit `dependsOn` and the implicit ones from Outputs, as the SDK
 * sends them in `dependencies`), the parent, and the provider — and nothing else. The Node SDK
 * sends a registration only once its dependencies' registrations are done (their URNs and
 * outputs resolve then), so the engine can never act on a resource before those; among
 * resources that are ready at the same time the engine runs steps concurrently in any order.
 * The model then takes the one registered *last*, so that the program's textual order can never
 * stand in for a dependency it forgot to declare.
 */
export function schedule(goals: readonly Registration[]): Registration[] {
  const byUrn = new Map(goals.map((g) => [g.urn, g]));
  const edges = new Map<string, Set<string>>();
  for (const g of goals) {
    const deps = new Set<string>();
    for (const d of [...g.dependencies, g.parentUrn, providerUrn(g.provider)]) {
      if (!d) continue;
      if (!byUrn.has(d)) {
        // A default provider (""), or a dependency outside this program: the engine would
        // fail the registration; so does the model.
        throw new Error(`${g.name} depends on ${d}, which the program did not register`);
      }
      deps.add(d);
    }
    edges.set(g.urn, deps);
  }
  const done = new Set<string>();
  const order: Registration[] = [];
  while (order.length < goals.length) {
    const ready = goals.filter(
      (g) => !done.has(g.urn) && [...edges.get(g.urn)!].every((d) => done.has(d)),
    );
    if (ready.length === 0) {
      const rest = goals.filter((g) => !done.has(g.urn)).map((g) => g.name);
      throw new Error(`dependency cycle among ${rest.join(", ")}`);
    }
    const next = ready.reduce((a, b) => (b.index > a.index ? b : a));
    order.push(next);
    done.add(next.urn);
  }
  return order;
}

/** The URNs a resource state depends on (dependencies, property deps, deletedWith, provider). */
function dependencyUrns(r: ResourceState): Set<string> {
  const out = new Set<string>(r.dependencies);
  for (const urns of Object.values(r.propertyDependencies)) urns.forEach((u) => out.add(u));
  if (r.deletedWith) out.add(r.deletedWith);
  const p = providerUrn(r.provider);
  if (p) out.add(p);
  return out;
}

/**
 * The old URN an alias stands for (step_generator.go `collapseAliasToUrn`): unset parts are the
 * resource's own; a parent that was itself aliased is replaced by its old URN.
 */
function aliasUrn(
  goal: Registration,
  alias: AliasSpec,
  parentAliases: Map<string, string>,
): string {
  if (alias.urn) return alias.urn;
  let parent = alias.parentUrn ?? goal.parentUrn;
  parent = parentAliases.get(parent) ?? parent;
  if (alias.noParent) parent = "";
  return mockUrn(parent, alias.type ?? goal.type, alias.name ?? goal.name);
}

/**
 * Aliases a child inherits from an aliased parent (step_generator.go `inheritedChildAlias`):
 * the child's name has the parent's old name in place of the new prefix.
 */
function inheritedAlias(goal: Registration, parentOldUrn: string, parentName: string): string {
  const oldParentName = parentOldUrn.split("::").pop() ?? "";
  const name = goal.name.startsWith(parentName)
    ? oldParentName + goal.name.slice(parentName.length)
    : goal.name;
  return mockUrn(parentOldUrn, goal.type, name);
}

/** True when the replacement trigger changed (step_generator.go `shouldTriggerReplace`). */
function triggerChanged(next: unknown, prev: unknown): boolean {
  if (next === undefined || next === null) return false;
  return JSON.stringify(plain(next)) !== JSON.stringify(plain(prev ?? null));
}

/**
 * The engine's own part of a diff (step_generator.go `applyReplaceOnChanges`): a detailed-diff
 * path or a changed key that a `replaceOnChanges` path contains becomes a replacement.
 */
export function applyReplaceOnChanges(diff: DiffResult, replaceOnChanges: readonly string[]) {
  const patterns = replaceOnChanges.map(parsePath);
  const detailed = { ...diff.detailed };
  for (const [p, kind] of Object.entries(detailed)) {
    if (patterns.some((pat) => pathContains(pat, parsePath(p)))) detailed[p] = asReplace(kind);
  }
  const replaceKeys = new Set(diff.replaceKeys);
  for (const k of diff.changedKeys) {
    if (patterns.some((pat) => pathContains(pat, parsePath(k)))) replaceKeys.add(k);
  }
  for (const [p, kind] of Object.entries(detailed)) {
    if (kind.endsWith("-replace")) replaceKeys.add(String(parsePath(p)[0]));
  }
  return { ...diff, detailed, replaceKeys: [...replaceKeys].sort() };
}

/** One deployment (`pulumi up`) over a snapshot, which it updates in place. */
class Deployment {
  readonly steps: Step[] = [];
  /** New states of this deployment, by URN, in completion order. */
  private readonly news = new Map<string, ResourceState>();
  /** Old states this deployment operated on (same/update/replace), by identity. */
  private readonly operated = new Set<ResourceState>();
  /** Old states deleted early by a delete-before-replace (step_generator `sg.deletes`). */
  private readonly deletedEarly = new Map<string, ResourceState>();
  /** old URN -> new URN for resources found through an alias. */
  private readonly aliased = new Map<string, string>();
  /** new URN -> old URN, for children of aliased parents. */
  private readonly parentAliases = new Map<string, string>();
  private readonly goalByUrn: Map<string, Registration>;

  constructor(
    private readonly goals: readonly Registration[],
    private readonly snapshot: Snapshot,
    private readonly opts: DeploymentOptions,
  ) {
    this.goalByUrn = new Map(goals.map((g) => [g.urn, g]));
  }

  private targeted(urn: string, name: string): boolean {
    if (!this.opts.targets) return true;
    return this.opts.targets.includes(urn) || this.opts.targets.includes(name);
  }

  private ops(type: string): ProviderOps {
    const ops = this.opts.providers(type);
    if (!ops) throw new Error(`the engine model has no provider for ${type}`);
    return ops;
  }

  private record(step: Step): void {
    this.steps.push(step);
    this.opts.onStep?.(step);
  }

  /** Runs a provider call as step `step`; a failure stops the deployment. */
  private async run<T>(step: Step, fn: () => Promise<T>): Promise<T> {
    try {
      const value = await fn();
      this.record(step);
      return value;
    } catch (err) {
      throw new DeploymentError(step, this.steps, err);
    }
  }

  private stepOf(
    op: StepOp,
    r: { urn: string; type: string; name: string; custom: boolean },
    keys?: string[],
  ): Step {
    return keys
      ? { op, urn: r.urn, type: r.type, name: r.name, custom: r.custom, keys }
      : { op, urn: r.urn, type: r.type, name: r.name, custom: r.custom };
  }

  /** The live (not pending-delete) old state for a URN or one of the goal's aliases. */
  private findOld(goal: Registration): ResourceState | undefined {
    const early = this.deletedEarly.get(goal.urn);
    if (early) return early;
    const live = (urn: string) => this.snapshot.resources.find((r) => r.urn === urn && !r.delete);
    const own = live(goal.urn);
    if (own) return own;
    const candidates = goal.options.aliases.map((a) => aliasUrn(goal, a, this.parentAliases));
    const parentOld = this.parentAliases.get(goal.parentUrn);
    if (parentOld) {
      const parentName = goal.parentUrn.split("::").pop() ?? "";
      candidates.push(inheritedAlias(goal, parentOld, parentName));
    }
    for (const urn of candidates) {
      const old = live(urn);
      if (!old) continue;
      if (this.aliased.has(urn)) {
        throw new Error(`${goal.urn} and ${this.aliased.get(urn)} both claim ${urn} as an alias`);
      }
      if (this.goalByUrn.has(urn)) {
        throw new Error(`${goal.urn} claims ${urn} as an alias, but the program registers ${urn}`);
      }
      this.aliased.set(urn, goal.urn);
      this.parentAliases.set(goal.urn, urn);
      return old;
    }
    return undefined;
  }

  /**
   * The goal's inputs with every provider-computed value the mocks made up (ids, image ids)
   * replaced by the real value of the resource it came from. A made-up value of a resource the
   * goal does not depend on means the recording is inconsistent: the model refuses it.
   */
  private realInputs(goal: Registration): Record<string, unknown> {
    const sentinels: { value: string; from: Registration; key: string }[] = [];
    for (const other of this.goals) {
      if (!other.custom || other.urn === goal.urn) continue;
      if (other.mock.id.length >= 8)
        sentinels.push({ value: other.mock.id, from: other, key: "id" });
      const declared = plain<Record<string, unknown>>(other.inputs);
      for (const [k, v] of Object.entries(plain<Record<string, unknown>>(other.mock.outputs))) {
        if (typeof v === "string" && v.length >= 8 && declared[k] !== v) {
          sentinels.push({ value: v, from: other, key: k });
        }
      }
    }
    // Longest first: one made-up value may contain another (a repo digest holds the image id).
    sentinels.sort((a, b) => b.value.length - a.value.length);
    const deps = new Set([
      ...goal.dependencies,
      ...Object.values(goal.propertyDependencies).flat(),
    ]);
    const substitute = (s: string): string => {
      let out = s;
      for (const { value, from, key } of sentinels) {
        if (!out.includes(value)) continue;
        if (!deps.has(from.urn)) {
          throw new Error(
            `${goal.name}'s inputs hold ${from.name}'s ${key} but do not depend on ${from.name}`,
          );
        }
        const real = this.news.get(from.urn);
        if (!real) throw new Error(`${goal.name} needs ${from.name}, which is not realized`);
        const actual = key === "id" ? real.id : real.outputs[key];
        if (typeof actual !== "string") {
          throw new Error(`${from.name} has no ${key} output for ${goal.name}`);
        }
        out = out.split(value).join(actual);
      }
      return out;
    };
    const walk = (v: unknown): unknown => {
      if (typeof v === "string") return substitute(v);
      if (Array.isArray(v)) return v.map(walk);
      if (v && typeof v === "object") {
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
      }
      return v;
    };
    return walk(plain(goal.inputs)) as Record<string, unknown>;
  }

  private newState(goal: Registration, inputs: Record<string, unknown>): ResourceState {
    return {
      urn: goal.urn,
      type: goal.type,
      name: goal.name,
      custom: goal.custom,
      parentUrn: goal.parentUrn,
      provider: goal.provider,
      id: "",
      inputs,
      outputs: {},
      dependencies: goal.dependencies,
      propertyDependencies: goal.propertyDependencies,
      protect: goal.options.protect ?? false,
      retainOnDelete: goal.options.retainOnDelete ?? false,
      deletedWith: goal.options.deletedWith,
      ignoreChanges: goal.options.ignoreChanges,
      replaceOnChanges: goal.options.replaceOnChanges,
      replacementTrigger: goal.options.replacementTrigger,
      delete: false,
    };
  }

  private diff(old: ResourceState, inputs: Record<string, unknown>, ignore: readonly string[]) {
    const rule = diffRuleFor(old.type);
    if (!rule) throw new Error(`the engine model has no diff rule for ${old.type}`);
    return rule(old, inputs, ignore);
  }

  /**
   * The dependents a delete-before-replace of `root` must delete first
   * (step_generator.go `calculateDependentReplacements`): walking the old state's transitive
   * dependents (not those already operated on in this deployment), a custom resource is taken
   * along when its provider is being replaced, or when its provider's Diff — with every input
   * that has a property dependency on the replace set made unknown — and its replaceOnChanges
   * say "replace". A `dependsOn`-only edge never takes a dependent along.
   */
  private dependentReplacements(root: ResourceState): ResourceState[] {
    // The transitive dependents of root in the old state (graph.DependencyGraph `DependingOn`,
    // without children), minus what this deployment already operated on.
    const members = new Set<ResourceState>();
    const urns = new Set([root.urn]);
    for (let grew = true; grew;) {
      grew = false;
      for (const r of this.snapshot.resources) {
        if (r === root || members.has(r) || this.operated.has(r) || this.news.has(r.urn)) continue;
        if ([...dependencyUrns(r)].some((d) => urns.has(d))) {
          members.add(r);
          urns.add(r.urn);
          grew = true;
        }
      }
    }
    // Walked in dependency order, so that a dependent's own dependencies are decided first.
    const ordered = topological([...members]);
    const replaceSet = new Set([root.urn]);
    const out: ResourceState[] = [];
    for (const r of ordered) {
      if (!r.custom) continue;
      let replace = replaceSet.has(providerUrn(r.provider));
      if (!replace) {
        let touched = false;
        const inputs: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(r.inputs)) {
          const hit = (r.propertyDependencies[k] ?? []).some((u) => replaceSet.has(u));
          touched ||= hit;
          inputs[k] = hit ? UNKNOWN : v;
        }
        if (!touched) continue;
        const diff = applyReplaceOnChanges(
          this.diff(r, inputs, r.ignoreChanges),
          r.replaceOnChanges,
        );
        replace = diff.replaceKeys.length > 0;
      }
      if (replace) {
        out.push(r);
        replaceSet.add(r.urn);
      }
    }
    return out;
  }

  private async deleteState(old: ResourceState, op: StepOp): Promise<void> {
    const step = this.stepOf(op, old);
    if (op === "delete" && old.protect) {
      throw new DeploymentError(
        step,
        this.steps,
        new Error(`resource ${JSON.stringify(old.urn)} cannot be deleted because it is protected`),
      );
    }
    await this.run(step, async () => {
      // step.go `DeleteStep.Apply`: retainOnDelete, or deletedWith a resource also being
      // deleted, skip the provider's Delete; the state entry goes either way.
      const deletedWithToo = old.deletedWith !== "" && this.deletingUrns.has(old.deletedWith);
      if (old.custom && !isProviderType(old.type) && !old.retainOnDelete && !deletedWithToo) {
        await this.ops(old.type).delete(old);
      }
    });
    this.snapshot.resources.splice(this.snapshot.resources.indexOf(old), 1);
  }

  private readonly deletingUrns = new Set<string>();

  /**
   * Registers every goal in schedule order, then deletes what is condemned. When a step fails
   * the engine starts no new step, but steps already running go on (deployment_executor.go: the
   * step executor's context is cancelled; `WaitForCompletion`), and any resource that does not
   * depend on the failed one may have been running: its registration did not wait for it. The
   * model therefore still realizes every resource that does not (transitively) depend on a
   * failed one — the most that can have happened — and deletes nothing (`performPostSteps` is
   * not reached). Then it throws the first failure, with every step that ran.
   */
  async execute(): Promise<Step[]> {
    const failed = new Set<string>();
    let firstFailure: DeploymentError | undefined;
    for (const goal of schedule(this.goals)) {
      const needs = [...goal.dependencies, goal.parentUrn, providerUrn(goal.provider)].filter(
        (d) => d !== "",
      );
      if (needs.some((d) => failed.has(d))) {
        failed.add(goal.urn);
        continue;
      }
      for (const d of needs) {
        // The invariant the scheduler guarantees, checked: nothing acts before what it needs.
        if (!this.news.has(d)) {
          throw new Error(`engine model: ${goal.name} reached before its dependency ${d}`);
        }
      }
      try {
        await this.register(goal);
      } catch (err) {
        if (!(err instanceof DeploymentError)) throw err;
        firstFailure ??= err;
        failed.add(goal.urn);
      }
    }
    if (firstFailure) {
      throw new DeploymentError(firstFailure.failed, this.steps, firstFailure.cause);
    }
    await this.generateDeletes();
    return this.steps;
  }

  private async register(goal: Registration): Promise<void> {
    const old = this.findOld(goal);

    // step_generator.go `continueStepsFromImport`: an untargeted resource keeps its old state
    // (a same step); one that does not exist yet is not created (a skipped create, which its
    // dependents then cannot use: the model refuses that).
    if (!this.targeted(goal.urn, goal.name)) {
      if (!old) throw new Error(`${goal.name} is not targeted and does not exist yet`);
      this.operated.add(old);
      const kept = { ...old, urn: goal.urn };
      this.replaceInSnapshot(old, kept);
      this.news.set(goal.urn, kept);
      this.record(this.stepOf("same", kept));
      return;
    }

    // `processIgnoreChanges`: ignored paths keep their old values, in the state too.
    const inputs = old
      ? applyIgnoreChanges(this.realInputs(goal), old.inputs, goal.options.ignoreChanges)
      : this.realInputs(goal);
    const next = this.newState(goal, inputs);

    // Components and the root stack have no provider: "same" when their inputs are equal
    // (step_generator.go `diff`, `prov == nil`).
    if (!goal.custom) {
      if (old) {
        const changed = JSON.stringify(old.inputs) !== JSON.stringify(inputs);
        this.operated.add(old);
        const kept = { ...next, id: old.id, outputs: old.outputs };
        this.replaceInSnapshot(old, kept);
        this.news.set(goal.urn, kept);
        this.record(this.stepOf(changed ? "update" : "same", kept));
      } else {
        next.id = goal.type === ROOT_STACK ? "" : goal.urn;
        this.snapshot.resources.push(next);
        this.news.set(goal.urn, next);
        this.record(this.stepOf("create", next));
      }
      return;
    }

    if (!old) {
      const created = await this.run(this.stepOf("create", next), () => this.createOrConfig(next));
      Object.assign(next, created);
      this.snapshot.resources.push(next);
      this.news.set(goal.urn, next);
      return;
    }

    // Deleted earlier in this deployment by a delete-before-replace of something it depends on:
    // re-created (step_generator.go `ContinueStepsFromDiff`/`continueStepsFromImport`,
    // "recreating": a replace step, then create-replacement).
    if (this.deletedEarly.get(goal.urn) === old) {
      this.deletedEarly.delete(goal.urn);
      this.record(this.stepOf("replace", next));
      const created = await this.run(this.stepOf("create-replacement", next), () =>
        this.createOrConfig(next),
      );
      Object.assign(next, created);
      this.snapshot.resources.push(next);
      this.news.set(goal.urn, next);
      return;
    }

    // step_generator.go `generateStepsFromDiff`: a changed replacementTrigger replaces without
    // asking the provider; otherwise the provider's Diff (with ignoreChanges applied,
    // `processIgnoreChanges`) and then the engine's replaceOnChanges (`applyReplaceOnChanges`).
    let diff: DiffResult;
    if (triggerChanged(goal.options.replacementTrigger, old.replacementTrigger)) {
      diff = {
        detailed: {},
        changedKeys: [],
        replaceKeys: ["replacementTrigger"],
        deleteBeforeReplace: false,
      };
    } else if (
      providerUrn(old.provider) !== providerUrn(goal.provider) &&
      !this.aliased.has(providerUrn(old.provider))
    ) {
      // step_generator.go `providerChanged` (the full rule also asks the provider; not modelled).
      diff = {
        detailed: {},
        changedKeys: [],
        replaceKeys: ["provider"],
        deleteBeforeReplace: false,
      };
    } else {
      diff = applyReplaceOnChanges(
        this.diff(old, inputs, goal.options.ignoreChanges),
        goal.options.replaceOnChanges,
      );
    }

    if (diff.changedKeys.length === 0 && diff.replaceKeys.length === 0) {
      // A same step: the new goal (options, dependencies) with the old id and outputs.
      this.operated.add(old);
      Object.assign(next, { id: old.id, outputs: old.outputs });
      this.replaceInSnapshot(old, next);
      this.news.set(goal.urn, next);
      this.record(this.stepOf("same", next));
      return;
    }

    this.operated.add(old);
    if (diff.replaceKeys.length === 0) {
      // An in-place update (step_generator.go `continueStepsFromDiff`, "it's an update").
      const { outputs } = await this.run(this.stepOf("update", next, diff.changedKeys), () =>
        this.ops(goal.type).update(old, inputs, diff),
      );
      Object.assign(next, { id: old.id, outputs });
      this.replaceInSnapshot(old, next);
      this.news.set(goal.urn, next);
      return;
    }

    // A replacement of a protected resource is refused (`continueStepsFromDiff`).
    if ((goal.options.protect ?? false) && old.protect) {
      throw new DeploymentError(
        this.stepOf("replace", next, diff.replaceKeys),
        this.steps,
        new Error(
          `unable to replace resource ${JSON.stringify(goal.urn)} as it is currently marked for protection`,
        ),
      );
    }

    // The provider's preference, overridden by the deleteBeforeReplace option when set.
    const deleteBeforeReplace = goal.options.deleteBeforeReplace ?? diff.deleteBeforeReplace;
    if (deleteBeforeReplace) {
      // DeleteBeforeReplace: dependents that would be replaced go first (in reverse dependency
      // order), then the resource itself; then replace + create-replacement.
      const dependents = this.dependentReplacements(old);
      for (const d of [...dependents].reverse()) {
        if (d.protect) {
          throw new DeploymentError(
            this.stepOf("delete-replaced", d),
            this.steps,
            new Error(
              `unable to replace resource ${JSON.stringify(d.urn)} as part of replacing ${JSON.stringify(goal.urn)} as it is currently marked for protection`,
            ),
          );
        }
        // The engine's `sg.deletes`: when it registers again it is re-created, not diffed.
        if (!d.delete) this.deletedEarly.set(d.urn, d);
        this.deletingUrns.add(d.urn);
        await this.deleteState(d, d.delete ? "delete" : "delete-replaced");
      }
      this.deletingUrns.add(old.urn);
      await this.deleteState(old, "delete-replaced");
      this.record(this.stepOf("replace", next, diff.replaceKeys));
      const created = await this.run(
        this.stepOf("create-replacement", next, diff.replaceKeys),
        () => this.createOrConfig(next),
      );
      Object.assign(next, created);
      this.snapshot.resources.push(next);
      this.news.set(goal.urn, next);
      return;
    }

    // CreateBeforeDelete, the default: create the new one, then a (logical) replace step; the
    // old one is marked for deletion (step.go `CreateStep.Apply`) and deleted after every
    // registration (`GenerateDeletes`), in reverse dependency order.
    const created = await this.run(this.stepOf("create-replacement", next, diff.replaceKeys), () =>
      this.createOrConfig(next),
    );
    Object.assign(next, created);
    old.delete = true;
    this.snapshot.resources.push(next);
    this.news.set(goal.urn, next);
    this.record(this.stepOf("replace", next, diff.replaceKeys));
  }

  private async createOrConfig(next: ResourceState) {
    if (isProviderType(next.type)) {
      return { id: `${next.name}-provider`, outputs: { ...next.inputs } };
    }
    return this.ops(next.type).create(next);
  }

  private replaceInSnapshot(old: ResourceState, next: ResourceState): void {
    const i = this.snapshot.resources.indexOf(old);
    this.snapshot.resources.splice(i, 1);
    this.snapshot.resources.push(next);
  }

  /**
   * step_generator.go `GenerateDeletes` + `ScheduleDeletes`: the old resources replaced
   * create-before-delete (delete-replaced) and those no longer registered (delete), deleted in
   * reverse dependency order: a resource goes only once nothing that depends on it is left.
   * With `--target`, deleting an untargeted resource is an error.
   */
  private async generateDeletes(): Promise<void> {
    const condemned = this.snapshot.resources.filter(
      (r) =>
        r.delete || (!this.news.has(r.urn) && !this.aliased.has(r.urn) && !this.operated.has(r)),
    );
    for (const r of condemned) {
      if (!this.targeted(r.urn, r.name)) {
        throw new Error(`${r.urn} would be deleted but was not specified in the target list`);
      }
    }
    await this.deleteInReverseOrder(condemned, (r) => (r.delete ? "delete-replaced" : "delete"));
  }

  /** Deletes `condemned` so that no resource goes before one that depends on it. */
  async deleteInReverseOrder(
    condemned: ResourceState[],
    opOf: (r: ResourceState) => StepOp,
  ): Promise<void> {
    const left = new Set(condemned);
    condemned.forEach((r) => this.deletingUrns.add(r.urn));
    while (left.size > 0) {
      // Deletable now: nothing left depends on it (graph.DependencyGraph `DependingOn`, plus
      // children: a parent goes after its children).
      const ready = [...left].filter(
        (r) =>
          ![...left].some(
            (o) => o !== r && (dependencyUrns(o).has(r.urn) || o.parentUrn === r.urn),
          ),
      );
      if (ready.length === 0) {
        throw new Error(`dependency cycle among ${[...left].map((r) => r.name).join(", ")}`);
      }
      // Among those, the last in the snapshot first (any order is the engine's to choose).
      const next = ready.reduce((a, b) =>
        this.snapshot.resources.indexOf(b) > this.snapshot.resources.indexOf(a) ? b : a,
      );
      left.delete(next);
      await this.deleteState(next, opOf(next));
    }
  }
}

/** States in an order where each comes after the others it depends on (or is a child of). */
function topological(states: ResourceState[]): ResourceState[] {
  const left = new Set(states);
  const out: ResourceState[] = [];
  while (left.size > 0) {
    const ready = [...left].filter(
      (r) =>
        ![...left].some((o) => o !== r && (dependencyUrns(r).has(o.urn) || r.parentUrn === o.urn)),
    );
    if (ready.length === 0) throw new Error("dependency cycle in the state");
    for (const r of ready) {
      left.delete(r);
      out.push(r);
    }
  }
  return out;
}

/**
 * `pulumi up`: realizes `goals` over `snapshot` (updated in place) and returns the steps in the
 * order they ran. Throws a {@link DeploymentError} (with the steps so far) when a step fails;
 * what succeeded before stays in the snapshot, and resources replaced create-before-delete whose
 * old copy was not deleted yet are deleted by the next deployment, as the engine does.
 */
export async function up(
  goals: readonly Registration[],
  snapshot: Snapshot,
  opts: DeploymentOptions,
): Promise<Step[]> {
  return new Deployment(goals, snapshot, opts).execute();
}

/**
 * `pulumi destroy`: every resource of the snapshot deleted in reverse dependency order
 * (step_generator.go `GenerateDeletes`/`ScheduleDeletes` in destroy mode), each through its
 * provider's Delete with the state it was created with. Protected resources fail it.
 */
export async function destroy(snapshot: Snapshot, opts: DeploymentOptions): Promise<Step[]> {
  const d = new Deployment([], snapshot, opts);
  await d.deleteInReverseOrder([...snapshot.resources], (r) =>
    r.delete ? "delete-replaced" : "delete",
  );
  return d.steps;
}
