"""spark-submit entry points, one per job, each with ``main(argv)``."""
