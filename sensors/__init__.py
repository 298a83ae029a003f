"""Run-status and request sensors: failure streaks and alerts, and Sync Now requests."""
