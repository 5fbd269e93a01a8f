"""A small kustomize for the tests: renders deploy/k8s/ without the kustomize or kubectl binary.

It knows only the kustomization fields that deploy/k8s uses, and refuses any other, so it can never
quietly render something kustomize would render differently:

- `resources`: YAML files, or folders with a kustomization.yaml (built first, recursively);
- `patches`: entries with `path` only, a strategic-merge patch per document, matched by kind and name;
  `$patch: delete` removes the resource; maps merge key by key, the lists Kubernetes merges by name
  (`MERGE_BY_NAME`) merge item by item, every other list is replaced (as in Kubernetes for those fields);
- `replicas`: `spec.replicas` of the named Deployment or StatefulSet;
- `images`: `newName` / `newTag` of every container and init container whose image has that name;
- `namespace`: `metadata.namespace` of every namespaced resource.

The order is kustomize's: resources, patches, replicas, images, namespace. tests/deploy/test_k8s.py checks
that the result equals `kubectl kustomize` wherever kubectl is installed.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

FIELDS = {"apiVersion", "kind", "resources", "patches", "replicas", "images", "namespace"}
MERGE_BY_NAME = {"containers", "initContainers", "env", "volumes"}
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding",
                  "IngressClass", "PriorityClass", "CustomResourceDefinition"}  # fmt: skip


class KustomizeError(ValueError):
    """The tree uses something this loader does not implement, or names what is not there."""


def load_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def key(resource: dict) -> tuple[str, str]:
    return resource["kind"], resource["metadata"]["name"]


def build(folder: Path) -> list[dict]:
    """The resources `kustomize build folder` makes, in file order."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - FIELDS
    if unknown:
        raise KustomizeError(f"{folder}/kustomization.yaml: {sorted(unknown)} not implemented by kustomize_lite")
    resources: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        resources += build(path) if path.is_dir() else load_documents(path)
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise KustomizeError(f"{folder}: a patch with {sorted(patch_entry)}: only `path` is implemented")
        for patch in load_documents(folder / patch_entry["path"]):
            target = find(resources, patch["kind"], patch["metadata"]["name"], folder)
            if patch.get("$patch") == "delete":
                resources.remove(target)
            elif "$patch" in patch:
                raise KustomizeError(f"{folder}: $patch {patch['$patch']!r} not implemented")
            else:
                merge(target, patch)
    for entry in kustomization.get("replicas", []):
        workloads = [r for r in resources if r["kind"] in ("Deployment", "StatefulSet")]
        matches = [r for r in workloads if r["metadata"]["name"] == entry["name"]]
        if len(matches) != 1:
            raise KustomizeError(f"{folder}: replicas for {entry['name']!r} match {len(matches)} resources")
        matches[0]["spec"]["replicas"] = entry["count"]
    for entry in kustomization.get("images", []):
        if set(entry) - {"name", "newName", "newTag"}:
            raise KustomizeError(f"{folder}: image entry {entry}: only name, newName, newTag are implemented")
        for container in containers(resources):
            name, _, tag = container["image"].partition(":")
            if name == entry["name"]:
                container["image"] = f"{entry.get('newName', name)}:{entry.get('newTag', tag)}"
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = kustomization["namespace"]
    seen = [key(r) for r in resources]
    if len(seen) != len(set(seen)):
        raise KustomizeError(f"{folder}: a kind and name twice: {seen}")
    return resources


def find(resources: list[dict], kind: str, name: str, folder: Path) -> dict:
    matches = [r for r in resources if key(r) == (kind, name)]
    if len(matches) != 1:
        raise KustomizeError(f"{folder}: a patch of {kind}/{name} matches {len(matches)} resources")
    return matches[0]


def merge(target: dict, patch: dict) -> None:
    for name, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(name), dict):
            merge(target[name], value)
        elif name in MERGE_BY_NAME and isinstance(value, list) and isinstance(target.get(name), list):
            by_name = {item["name"]: item for item in target[name]}
            for item in value:
                if item["name"] in by_name:
                    merge(by_name[item["name"]], item)
                else:
                    target[name].append(copy.deepcopy(item))
        else:
            target[name] = copy.deepcopy(value)


def pod_spec(resource: dict) -> dict | None:
    """The pod template's spec of a workload (Deployment, StatefulSet, Job, ...), else None."""
    spec = resource.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
    return template["spec"] if template else None


def containers(resources: list[dict], *, init: bool = True) -> list[dict]:
    out = []
    for resource in resources:
        spec = pod_spec(resource)
        if spec:
            out += spec.get("containers", []) + (spec.get("initContainers", []) if init else [])
    return out
