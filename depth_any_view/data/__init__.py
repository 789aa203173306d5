"""Synthetic six-camera world and training data.

The world: `synth_config` (config/synth.yaml), `textures` (procedural materials), `scenes`
(indoor / outdoor meshes), `trajectory` (base path, speed, stops), `dynamic` (moving
persons and cars, `synth --dynamic`), `render` (Open3D ray casting into the rig),
`occupancy` (ground-truth voxel labels), `frame` (the Frame dataclass) and `synth`
(sequences, `synthesize`); training data: `shards` (npz + meta.json) and `dataset` (torch
Dataset over shards, numpy + torch only); real photographs: `real_images` (Middlebury
stereo pairs with true disparity from opencv-doc and scikit-image, issue 20). Nothing is
imported here, so reading shards never pulls in Open3D.
"""
