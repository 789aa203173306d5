"""Self-supervised adaptation to a robot's own unlabelled bags (`depth-any-view adapt`).

bag_sets.py reads bags into synchronized sets (no ground truth), losses.py holds the
photometric, smoothness and anchor terms, trainer.py the loop with checkpoints, evaluate.py
the held-out scores, report.py the report and run.py the command's entry point.
"""
