"""Run-status and request sensors: run outcomes, failure-streak alerts, and Sync Now requests."""

# The daemon's sensor loop comes round every 5 s and skips a sensor whose last tick began less than its
# minimum interval ago; 5 would land just short and tick every 10 s, so 2 means "every loop".
EVERY_DAEMON_LOOP = 2
