"""The stage DAG: dependency order, parameter resolution and entry keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mer.config import params_from_dict, stable_hash, to_jsonable
from mer.pipeline.stage import Stage, get_stage
from mer.store.errors import AmbiguousEntryError
from mer.store.store import EntryRef, FeatureStore


@dataclass(frozen=True)
class PlannedStage:
    """A stage with resolved parameters and the keys of its inputs, hence its own entry key."""

    stage: Stage
    params: Any
    inputs: dict[str, str]
    key: str
    recipe: str = ""

    def ref(self, dataset: str) -> EntryRef:
        return EntryRef(dataset, self.stage.name, self.key)


def stage_key(stage: Stage, params: Any, inputs: dict[str, str]) -> str:
    """Hash of canonical parameters, input keys and the stage's code version: same key ⇒ same bytes."""
    return stable_hash(
        {"stage": stage.name, "version": stage.version, "params": to_jsonable(params), "inputs": inputs}
    )


def stage_recipe(stage: Stage, params: Any, input_recipes: dict[str, str]) -> str:
    """What a stage computes regardless of the clips table version: the key with input recipes in place of input
    keys. Two entries with one recipe hold the same values for every clip whose own row did not change."""
    return stable_hash(
        {"stage": stage.name, "version": stage.version, "params": to_jsonable(params), "inputs": input_recipes}
    )


def dependency_order(targets: list[str]) -> list[str]:
    """Targets and everything they read, each after its inputs (depth-first topological order)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"stage graph has a cycle through {name!r}")
        visiting.add(name)
        for dep in get_stage(name).inputs:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for target in targets:
        visit(target)
    return order


def build_plan(
    store: FeatureStore, dataset: str, targets: list[str], overrides: dict[str, dict[str, Any]] | None = None
) -> list[PlannedStage]:
    """Resolve parameters and keys for ``targets`` and their inputs.

    A stage the user named or configured uses those parameters (defaults otherwise). An upstream stage that was
    neither named nor configured reuses the parameters of the entry already in the store for these inputs, so that
    ``build-mesti`` reads the faces that ``preprocess`` made and ``build-flow`` the apex that ``build-mesti`` used;
    with several such entries (of which not exactly one is complete) the user must choose.
    """
    overrides = overrides or {}
    manifest_hash = store.manifest_meta(dataset)["hash"]
    keys: dict[str, str] = {}
    recipes: dict[str, str] = {}
    plan: list[PlannedStage] = []
    for name in dependency_order(targets):
        stage = get_stage(name)
        inputs = {dep: keys[dep] for dep in stage.inputs} if stage.inputs else {"manifest": manifest_hash}
        if name in overrides or name in targets:
            params = params_from_dict(stage.params_type, overrides.get(name))
        else:
            params = _reuse_params(store, dataset, stage, inputs)
        key = stage_key(stage, params, inputs)
        keys[name] = key
        recipes[name] = stage_recipe(stage, params, {dep: recipes[dep] for dep in stage.inputs} or {"manifest": ""})
        plan.append(PlannedStage(stage, params, inputs, key, recipes[name]))
    return plan


def _reuse_params(store: FeatureStore, dataset: str, stage: Stage, inputs: dict[str, str]) -> Any:
    matches, complete = {}, {}
    for info in store.ls(dataset, stage.name):
        try:
            params = params_from_dict(stage.params_type, info.params)
        except (TypeError, ValueError):
            continue  # an entry of an older parameter schema
        if stage_key(stage, params, inputs) == info.key:
            matches[info.key] = params
            if info.status == "complete":
                complete[info.key] = params
    if len(matches) > 1 and len(complete) == 1:  # e.g. an apex rule that failed on some clips, then a working one
        matches = complete
    if len(matches) > 1:
        listing = ", ".join(sorted(matches))
        raise AmbiguousEntryError(
            f"{dataset}/{stage.name} has several entries ({listing}); name the parameters of the one to use"
        )
    return next(iter(matches.values())) if matches else stage.params_type()
