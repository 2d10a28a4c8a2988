"""Feast's own CLI in a workspace: the definitions module ``feast -c <workspace>/feast`` imports.

Feast's CLI (``feast plan``, ``apply``, ``materialize-incremental``, ``ui``, ``serve``) imports
every ``.py`` file under its repo folder, except what ``.feastignore`` lists, and treats the
Feast objects it finds as the whole repo: whatever the registry holds beyond them, ``feast
apply`` deletes. `write_cli_repo` therefore writes into ``<workspace>/feast`` a small module
(`MODULE`) that builds, from the workspace that holds it and the profile written into it, the
same validated objects `sdoh apply` registers (`definitions`), from what is published when
Feast imports it; and a ``.feastignore`` that keeps subfolders out.
"""

from __future__ import annotations

import logging
from pathlib import Path
from string import Template

from feast import Entity, FeatureService, FeatureView
from feast.repo_operations import get_repo_files

from feature_repo.definitions.entities import ALL_ENTITIES
from feature_repo.definitions.feature_services import feature_services
from feature_repo.definitions.feature_views import feature_views
from feature_repo.definitions.metadata import check_views
from ingestion.core.atomic import write_atomic
from ingestion.core.errors import PublishError
from ingestion.core.workspace import Workspace

log = logging.getLogger(__name__)

# Named for this project: Feast imports it as a top-level module (its folder joins sys.path).
MODULE = "sdoh_definitions.py"
MODULE_TEMPLATE = Template('''\
"""Feast definitions of the SDOH workspace holding this folder, for Feast's own CLI.

Written by sdoh (feature_repo.definitions.feast_cli) with feature_store.yaml; do not edit, it is rewritten.
`feast -c <this folder> plan|apply|materialize-incremental|ui|serve` imports it and gets the
same validated entities, views and services as `sdoh apply`, built from what is published.
"""

from feature_repo.definitions.feast_cli import repo_objects

globals().update(repo_objects(__file__, profile=$profile))
''')
FEASTIGNORE = """\
# Written by sdoh. Feast's CLI imports every .py file under this folder: only
# sdoh_definitions.py belongs here; nothing in a subfolder is a definition.
*/
"""


def definitions(workspace: Workspace, *, profile: str) -> list[Entity | FeatureView | FeatureService]:
    """Entities, views and services for what ``workspace`` publishes, equity metadata checked.

    The one list both `sdoh apply` and Feast's CLI register, with the sources of ``profile``'s
    offline store (``SparkSource`` on ``spark``, `feast.FileSource` otherwise).

    Raises
    ------
    PublishError
        If nothing is published in ``workspace``.
    sdoh_sources.CatalogError
        If a field lacks an equity metadata key of DESIGN.md section 4, or has one out of
        vocabulary.

    Examples
    --------
    >>> [o.name for o in definitions(ws, profile="embedded")][-2:]
    ['model_inputs_v1', 'equity_audit_v1']
    """
    views = feature_views(workspace, profile=profile)
    if not views:
        raise PublishError(f"nothing is published in {workspace.root}: run `sdoh ingest` first")
    check_views(views)  # every field carries DESIGN.md section 4's metadata, in vocabulary
    return [*ALL_ENTITIES, *views, *feature_services(views)]


def repo_objects(module_file: str, *, profile: str) -> dict[str, Entity | FeatureView | FeatureService]:
    """The objects `MODULE` exposes to Feast: `definitions` of the workspace it lives in.

    Parameters
    ----------
    module_file : str
        The module's ``__file__``: ``<workspace>/feast/sdoh_definitions.py``.
    profile : str
        The profile its feature_store.yaml was rendered for: it picks the sources' kind, so
        Feast's CLI needs no ``SDOH_PROFILE``.

    Returns
    -------
    dict of str to Feast object
        Module-level names (``entity_*``, ``view_*``, ``service_*``) to objects.

    Examples
    --------
    >>> sorted(repo_objects("ws/feast/sdoh_definitions.py", profile="embedded"))[:1]  # doctest: +SKIP
    ['entity_block_group']
    """
    workspace = Workspace(Path(module_file).resolve().parent.parent)
    objects = definitions(workspace, profile=profile)
    kinds = {Entity: "entity", FeatureView: "view", FeatureService: "service"}
    return {f"{kinds[type(o)]}_{o.name}": o for o in objects}


def write_cli_repo(workspace: Workspace, *, profile: str) -> Path:
    """Write `MODULE`, and ``.feastignore`` if absent, into ``<workspace>/feast`` (private, atomically).

    Logs a warning naming any other ``.py`` file Feast's CLI would import from the folder:
    objects it defines would be registered by ``feast apply`` but not by `sdoh apply`.

    Parameters
    ----------
    workspace : Workspace
        The workspace whose feast folder to write.
    profile : str
        The profile feature_store.yaml was rendered for.

    Returns
    -------
    pathlib.Path
        The module written.

    Examples
    --------
    >>> write_cli_repo(Workspace("/tmp/ws"), profile="embedded").name
    'sdoh_definitions.py'
    """
    folder = workspace.feast
    module = folder / MODULE
    text = MODULE_TEMPLATE.substitute(profile=repr(profile))
    write_atomic(module, lambda handle: handle.write(text.encode("utf-8")))
    ignore = folder / ".feastignore"
    if not ignore.exists():  # a user's own list stays
        write_atomic(ignore, lambda handle: handle.write(FEASTIGNORE.encode("utf-8")))
    stray = [str(p) for p in get_repo_files(folder) if p != module.resolve()]
    if stray:
        log.warning("Feast's CLI will also import %s from %s: `feast apply` would register what "
                    "they define, which `sdoh apply` does not; remove them or list them in "
                    "%s/.feastignore", ", ".join(stray), folder, folder)
    return module
