"""crmkit's benchmarks: each workload timed through crmkit and through a hand-written baseline in the same run.

Run ``python -m bench --help``; ``docs/performance.md`` explains the workloads, the baselines and the figures.
"""
