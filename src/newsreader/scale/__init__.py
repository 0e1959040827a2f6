"""Running past one machine: the Redis-backed queue, reading state and live audio shared by
API nodes (``newsreader serve --redis``) and workers (``newsreader worker``)."""
