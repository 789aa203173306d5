"""What one training step of a preset costs: time, peak memory and floating-point work.

Issue 4 asks what the `paper` preset's full-size training needs (memory and time per
step) for users with GPUs. `bench_training_step` measures it on the machine it runs on,
with the trainer's own code (`Trainer.process_batch`: forward under autocast, losses,
backward, gradient clipping, AdamW step), on a small synthetic sequence rendered at the
preset's network size and grid so that every loss term runs as in real training:

- step time: median and p95 of `repeats` steps after `warmup` steps (seconds);
- memory: the process's peak RSS over the timed steps (MiB; on the CPU that is the
  model, optimizer state, activations and the rendered batch) and, on CUDA, the peak of
  `torch.cuda.max_memory_allocated` (what a GPU must hold, without the CUDA context);
- work: floating-point operations of one step counted by `torch.utils.flop_counter`
  (matrix multiplies, convolutions and attention, forward and backward; elementwise ops
  are not counted), so that the step time on another device can be estimated as
  FLOPs / the throughput it sustains.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from depth_any_view.bench import common


def training_batch(preset: str, heavy: bool) -> int:
    """Batch of the benchmark's training step: 1 for a heavy preset on the CPU (paper:
    about 9 GiB and half a minute per sample), else the preset's recipe batch (4 without
    one)."""
    if heavy:
        return 1
    recipe = _recipe(preset)
    return int(recipe.batch_size) if recipe is not None else 4


def bench_training_step(preset: str, device: str, *, batch_size: int, amp: str | None = None,
                        repeats: int = 3, warmup: int = 1,
                        overrides: dict[str, Any] | None = None, seed: int = 0,
                        threads: int = 0) -> dict[str, Any]:
    """Time, peak memory and FLOPs of one training step of `preset` on `device`.

    Args:
        preset: model preset or model YAML (as `train`'s `model`); a preset with a
            training recipe (config/train_<preset>.yaml) runs with its losses and autocast.
        device: 'cpu', 'cuda' or 'cuda:N'.
        batch_size: samples (six-view sets) per step.
        amp: autocast setting ('auto', 'bf16', 'fp16', 'off'); None = the recipe's.
        repeats: timed steps; warmup: untimed steps before them.
        overrides: model config overrides (tests shrink the preset with them).
        seed: scene seed of the synthetic sequence.
        threads: torch CPU threads (0 = torch's default).

    Returns:
        A row: preset, device, batch_size, precision, image_size, grid_dims, views,
        parameters, step_s (summary), memory (PeakMemory.as_dict), flops_per_step.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from depth_any_view.data.synth import synthesize
    from depth_any_view.model.config import load_model_config
    from depth_any_view.training.config import TrainConfig
    from depth_any_view.training.trainer import Trainer, model_config_with

    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"batch_size and repeats must be >= 1 and warmup >= 0, got "
                         f"{batch_size}, {repeats}, {warmup}")
    recipe = _recipe(preset) or TrainConfig(model=preset)
    model_overrides = {**recipe.model_overrides, **dict(overrides or {})}
    mc = model_config_with(load_model_config(preset), model_overrides)
    dims = tuple(int(d) for d in mc.grid_dims)
    if len(set(dims)) != 1:
        raise ValueError(f"the training benchmark renders a cubic grid; {preset} has "
                         f"grid_dims {list(dims)}")
    h, w = (int(v) for v in mc.image_size)
    with tempfile.TemporaryDirectory(prefix="dav_bench_train_") as tmp:
        data = Path(tmp) / "seq"
        synthesize(data, frames=batch_size, size=(w, h), seed=seed, scene="mixed",
                   grid_dims=dims[0], progress=False)
        cfg = replace(recipe, model=preset, model_overrides=model_overrides,
                      init_weights="", train_data=[str(data)], val_data=[],
                      batch_size=batch_size, epochs=1, max_steps=0, max_minutes=0,
                      warmup_steps=0, amp=recipe.amp if amp is None else amp, device=device,
                      num_workers=0, threads=threads, out_dir=str(Path(tmp) / "run"),
                      mlflow=False, seed=seed, augment={})
        trainer = Trainer(cfg, command="depth-any-view bench (training step)")
        try:
            batch = next(iter(trainer.train_loader))
            for _ in range(warmup):
                trainer.process_batch(batch)
            with FlopCounterMode(display=False) as counter:
                trainer.process_batch(batch)
            flops = int(counter.get_total_flops())
            times = []
            with common.PeakMemory(trainer.device) as memory:
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    trainer.process_batch(batch)  # ends in a host sync (the loss values)
                    times.append(time.perf_counter() - t0)
            precision = {None: "fp32", torch.bfloat16: "bf16",
                         torch.float16: "fp16"}.get(trainer.amp_dtype, str(trainer.amp_dtype))
            return {"preset": preset, "device": str(trainer.device), "batch_size": batch_size,
                    "precision": precision, "image_size": [h, w], "grid_dims": list(dims),
                    "views": len(trainer.camera_names),
                    "parameters": sum(p.numel() for p in trainer.model.parameters()),
                    "step_s": common.summarize(times), "memory": memory.as_dict(),
                    "flops_per_step": flops, "repeats": repeats, "warmup": warmup}
        finally:
            trainer.close()


def _recipe(preset: str) -> Any:
    """The preset's training recipe (config/train_<preset>.yaml), or None when it has none
    (a model YAML path, or a preset without a recipe)."""
    from depth_any_view.config import ConfigError, config_path
    from depth_any_view.training.config import load_train_config

    if preset.endswith((".yaml", ".yml")) or "/" in preset:
        return None
    try:
        config_path(f"train_{preset}.yaml")
    except ConfigError:
        return None
    return load_train_config(preset)
