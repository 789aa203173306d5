"""SLAM integration: real consumers of the node's output, run and scored offline.

Two layers (docs/ARCHITECTURE.md, test/test_import_layers.py): the consumer library
(`trajectory`, `odometry`, `odometry_estimate`, `mesh`, `slam_config`) imports only the
core and is run by the pipeline for its cameras-only odometry; the `slam` command (`slam_command`,
`consumers`, `slam_report`) feeds bags through the pipeline into it.

- `trajectory`: Umeyama SE(3) alignment, ATE, RPE by travelled distance, tracking jumps,
  TUM trajectory files (numpy only).
- `odometry`: KISS-ICP on the fused base_link cloud and Open3D RGB-D odometry per camera,
  each giving T_odom_base per set (their libraries are imported when built).
- `odometry_estimate`: the velocity and covariances a cameras-only odometry publishes with
  its pose (nav_msgs/Odometry).
- `mesh`: TSDF fusion of depth along a trajectory, Chamfer distance and F-score between
  meshes, a headless picture of a mesh.
- `slam_command`: `depth-any-view slam` (`run_slam`): a bag through the node's pipeline
  (bag/feeder.py `BagFeeder`) into a consumer, predicted and ground-truth depth side by
  side; `consumers`: what each consumer is given per set and what it gave (`ConsumerRun`);
  `slam_report`: each run scored, report.md, TUM files, plots and meshes.
- `slam_config`: `load_slam_config` reads config/slam.yaml (the consumers' settings, the
  scoring and the targets); the pipeline reads it too, so it imports nothing above slam/.
"""
