"""The previous set's matching features, kept for the temporal cost volume.

A network with `cost_temporal` matches each view against the previous synchronized set,
moved into the current base_link by the base's motion from odometry (model/network.py,
`PreviousSet`). The engine keeps what that needs from the last set it ran: the matching
features the forward returned (on the device), the intrinsics and extrinsics at network
size, the camera names and the odometry pose and stamp of that set.

The previous set is *not* used (the network then relies on the other views and its
monocular cues) when:
- the set has no odometry pose (no `/odom` within its age limit, or odometry is off);
- there is no previous set, or its stamp is not older than the current one (a looped
  bag, a reset), or older than `max_gap_s` (a stall; the motion since is unreliable);
- a camera of the current set was not in the previous one (that view alone is masked).
A robot standing still needs no rule: zero baseline gives the pair zero weight inside the
cost volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from depth_any_view.model.network import PreviousSet

DEFAULT_MAX_GAP_S = 1.0  # seconds: an older previous set is not matched against


@dataclass
class _Stored:
    """What one processed set leaves for the next."""

    names: list[str]  # V camera names, view order
    features: torch.Tensor  # (1, V, C, h, w) matching features, on the device
    K: torch.Tensor  # (1, V, 3, 3) at network size, on the device
    T_base_cam: torch.Tensor  # (1, V, 4, 4), on the device
    T_odom_base: np.ndarray  # (4, 4) float64 pose of base_link in odom at that set
    stamp_ns: int


class PreviousSetCache:
    """Keeps the last set's features and pose and builds the next set's `PreviousSet`."""

    def __init__(self, max_gap_s: float = DEFAULT_MAX_GAP_S) -> None:
        if not max_gap_s > 0:
            raise ValueError(f"max_gap_s must be positive seconds, got {max_gap_s}")
        self.max_gap_ns = int(max_gap_s * 1e9)
        self._last: _Stored | None = None

    def reset(self) -> None:
        """Forget the previous set (after a map reset, a loop, a restart)."""
        self._last = None

    @property
    def has_previous(self) -> bool:
        """True when a set is stored."""
        return self._last is not None

    def previous_for(self, names: Sequence[str], T_odom_base: np.ndarray | None,
                     stamp_ns: int | None) -> PreviousSet | None:
        """The stored set as seen from a new set, or None when it must not be used.

        Args:
            names: the new set's camera names, view order.
            T_odom_base: (4, 4) pose of base_link in odom at the new set, or None.
            stamp_ns: the new set's stamp, int nanoseconds (None: no time check).
        """
        last = self._last
        if last is None or T_odom_base is None:
            return None
        if stamp_ns is not None:
            gap = int(stamp_ns) - last.stamp_ns
            if gap <= 0:
                self.reset()  # time went backwards: a looped bag or a reset
                return None
            if gap > self.max_gap_ns:
                return None
        T_cur = np.asarray(T_odom_base, dtype=np.float64)
        if not np.isfinite(T_cur).all():
            return None
        motion = np.linalg.solve(T_cur, last.T_odom_base)  # prev base -> current base
        index = [last.names.index(n) if n in last.names else 0 for n in names]
        valid = [n in last.names for n in names]
        device = last.features.device
        idx = torch.tensor(index, device=device)
        return PreviousSet(
            match_features=last.features.index_select(1, idx),
            K=last.K.index_select(1, idx), T_base_cam=last.T_base_cam.index_select(1, idx),
            T_base_prevbase=torch.as_tensor(motion, dtype=torch.float32).to(device)[None],
            valid=torch.tensor([valid], dtype=torch.bool).to(device))

    def store(self, names: Sequence[str], features: torch.Tensor | None, K: torch.Tensor,
              T_base_cam: torch.Tensor, T_odom_base: np.ndarray | None,
              stamp_ns: int | None) -> None:
        """Keep a processed set for the next one (forgets it when it has no pose)."""
        if features is None or T_odom_base is None or stamp_ns is None:
            self.reset()
            return
        self._last = _Stored(list(names), features, K, T_base_cam,
                             np.array(T_odom_base, dtype=np.float64), int(stamp_ns))
