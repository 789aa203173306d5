"""Procedural indoor and outdoor scenes as textured triangle meshes (numpy; Open3D for rays).

Frame: every scene is built in odom (x, y horizontal, z up, metres; the ground is near
z = 0). A scene is one triangle soup with a material id per triangle (see textures.py),
a closed driving route through its free space, the ground height field the base drives on,
and its lighting. Layouts are drawn from a numpy Generator, so a seed fixes everything.

- indoor: a ring of rooms and corridors rasterised on a floor plan (walls where free
  cells meet solid ones), floor and ceiling, side rooms behind doors, furniture-like boxes
  (cabinets, tables, crates, pictures) and columns, all kept clear of the route.
- outdoor: a street-canyon city: blocks of buildings of different heights with facade
  textures, raised sidewalks with kerbs, an uneven ground with speed-table ramps on the
  driven streets, parked cars (body, cabin, wheels), lamps, signs, trees, bins, bollards
  and loading ramps, closed by a ring of buildings.

`build_scene` picks the builder of a kind (data/indoor_scene.py, data/outdoor_scene.py);
both assemble their scene from data/scene_mesh.py's pieces, whose names this module
gathers.
"""

from __future__ import annotations

import numpy as np

from depth_any_view.data.indoor_scene import build_indoor
from depth_any_view.data.outdoor_scene import build_outdoor
from depth_any_view.data.scene_mesh import (
    HeightField,
    MeshBuilder,
    Scene,
    assemble_scene,
    build_raycaster,
    tessellate,
)
from depth_any_view.data.synth_config import SynthConfig

SCENE_KINDS = ("indoor", "outdoor")

__all__ = ["SCENE_KINDS", "HeightField", "MeshBuilder", "Scene", "assemble_scene",
           "build_raycaster", "build_scene", "tessellate"]


def build_scene(kind: str, rng: np.random.Generator, config: SynthConfig | None = None
                ) -> Scene:
    """A procedural scene of `kind` ('indoor' | 'outdoor') drawn from `rng`."""
    config = config or SynthConfig()
    if kind == "indoor":
        return build_indoor(rng, config)
    if kind == "outdoor":
        return build_outdoor(rng, config)
    raise ValueError(f"scene kind '{kind}' is unknown; use one of {', '.join(SCENE_KINDS)}")
