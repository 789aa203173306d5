"""N-camera approximate-time synchronization with explicit time and drop accounting."""

from depth_any_view.sync.approximate_time import (
    DROP_REASONS,
    ApproximateTimeSynchronizer,
    SyncConfig,
    SyncedSet,
    SyncedView,
    SyncReset,
)

__all__ = ["DROP_REASONS", "ApproximateTimeSynchronizer", "SyncConfig", "SyncedSet",
           "SyncedView", "SyncReset"]
